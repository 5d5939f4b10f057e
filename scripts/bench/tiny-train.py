#!/usr/bin/python3
"""PyTorch twin of scripts/bench/tiny-train.ts: small BEiTs (the reference's modeling_finetune
VisionTransformer in plain PyTorch, scripts/parity/finetune_step.py, with timm's drop path) trained
by the reference's step (engine_for_finetuning.train_one_epoch without AMP): forward, timm
LabelSmoothingCrossEntropy, backward, clip_grad_norm_, torch.optim.AdamW over the reference's
parameter groups (optim_factory.get_parameter_groups with layer decay).

Run by tiny-train.ts as a `--serve` child (Debian's /usr/bin/python3, OMP_WAIT_POLICY=PASSIVE): one
JSON request per stdin line, one JSON answer per stdout line.
  {"cmd": "setup", "name", "model": {...}, "init": .pth, "images": .npy, "targets": .npy,
   "eval_images": .npy, "opt": {"lr", "weight_decay", "layer_decay", "clip_grad", "smoothing"}}
  {"cmd": "eval_loss", "name"}        -> {"loss"}: eval-mode loss on the training batch
  {"cmd": "train", "name", "seed"}    -> {"seconds", "cpu_seconds", "loss", "grad_norm"}: one step,
                                          the default generator seeded first (drop path draws as ours)
  {"cmd": "eval", "name"}             -> {"seconds", "cpu_seconds"}: no-grad forward of the eval batch
  {"cmd": "rss"}                      -> {"max_rss_kb", "rss_kb"}
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
from finetune_step import Beit, label_smoothing_cross_entropy, parameter_groups  # noqa: E402


class Run:
    def __init__(self, req):
        o = dict(req["model"])
        self.model = Beit(o)
        self.model.load_state_dict(torch.load(req["init"]), strict=True)
        self.images = torch.from_numpy(np.load(req["images"])).float()
        self.targets = torch.from_numpy(np.load(req["targets"])).long()
        self.eval_images = torch.from_numpy(np.load(req["eval_images"])).float()
        r = req["opt"]
        depth = o["depth"]
        ld = r["layer_decay"]
        scales = [ld ** (depth + 1 - i) for i in range(depth + 2)] if ld < 1.0 else None
        groups = parameter_groups(self.model, r["weight_decay"], {"pos_embed", "cls_token"}, scales)
        for g in groups:
            del g["names"]
            g["lr"] = r["lr"] * g["lr_scale"]
        self.opt = torch.optim.AdamW(groups, lr=r["lr"], weight_decay=0.0)
        self.params = [p for g in self.opt.param_groups for p in g["params"]]
        self.clip = r["clip_grad"]
        self.smoothing = r["smoothing"]

    def loss(self, out):
        return label_smoothing_cross_entropy(out, self.targets, self.smoothing)

    def eval_loss(self):
        self.model.eval()
        with torch.no_grad():
            return {"loss": self.loss(self.model(self.images)).item()}

    def train(self, seed):
        self.model.train()
        c0, t0 = time.process_time(), time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        torch.manual_seed(seed)
        loss = self.loss(self.model(self.images))
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.opt.step()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        return {"seconds": seconds, "cpu_seconds": cpu, "loss": loss.item(), "grad_norm": norm.item()}

    def eval(self):
        self.model.eval()
        c0, t0 = time.process_time(), time.perf_counter()
        with torch.no_grad():
            self.model(self.eval_images)
        return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}


def rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--serve", action="store_true", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    runs = {}
    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        cmd = req["cmd"]
        if cmd == "setup":
            runs[req["name"]] = Run(req)
            out = {"ok": True}
        elif cmd == "eval_loss":
            out = runs[req["name"]].eval_loss()
        elif cmd == "train":
            out = runs[req["name"]].train(req["seed"])
        elif cmd == "eval":
            out = runs[req["name"]].eval()
        elif cmd == "rss":
            out = {"max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "rss_kb": rss_kb()}
        else:
            raise SystemExit("tiny-train.py --serve: unknown command %r" % cmd)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
