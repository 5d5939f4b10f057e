#!/usr/bin/python3
"""Python twin of scripts/bench/pretrain-step.ts: one MIM pre-training step (forward, cross-entropy at
masked positions, backward, AdamW over the reference's groups) of the model in
scripts/parity/pretrain_step.py, timed the same way. Prints one JSON object.

  OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 scripts/bench/pretrain-step.py --threads 2 --iters 3 --batch 8
"""
import argparse
import importlib.util
import json
import os
import time

import torch

spec = importlib.util.spec_from_file_location("pretrain_step", os.path.join(os.path.dirname(__file__), "..", "parity", "pretrain_step.py"))
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=2.0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--config", default="{}")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    o = json.loads(a.config)
    torch.manual_seed(0)
    model = ref.Mim(o)
    N = (o["img_size"] // o["patch_size"]) ** 2
    x = torch.randn(a.batch, 3, o["img_size"], o["img_size"])
    g = torch.Generator().manual_seed(1)
    m = torch.zeros(a.batch, N, dtype=torch.bool)
    for b in range(a.batch):
        m[b, torch.randperm(N, generator=g)[: int(N * 0.4)]] = True
    y = torch.randint(0, o["head_dim"], (a.batch, N), generator=g)
    decay, no_decay = [], []
    for k, v in model.named_parameters():
        (no_decay if v.ndim == 1 or k.endswith(".bias") or k in ("pos_embed", "cls_token") else decay).append(v)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-4, betas=(0.9, 0.98), eps=1e-8)
    model.train()

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x, m).float(), y[m])
        loss.backward()
        opt.step()
        return loss.item()

    step()
    n, t0 = 0, time.perf_counter()
    while n < a.iters or time.perf_counter() - t0 < a.min_seconds:
        step()
        n += 1
    s = time.perf_counter() - t0
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": a.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                      "batch": a.batch, "iters": n, "seconds": s, "images_per_s": a.batch * n / s}))


if __name__ == "__main__":
    main()
