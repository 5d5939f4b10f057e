#!/usr/bin/python3
"""Python twin of scripts/bench/finetune.ts: the same fine-tuning step loop in plain PyTorch, data
included — Fashion-MNIST train images held as one uint8 tensor, per-epoch seeded shuffle, RandomCrop
(padding 4) + horizontal flip + normalisation per batch, the reference recipe step (BEiT written in
scripts/parity/finetune_step.py, label-smoothing CE, backward, clip_grad_norm_, AdamW over the
layer-decay / weight-decay groups with per-step lr and wd). Prints one JSON object.

  OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 scripts/bench/finetune.py --threads 2 --steps 30
"""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "parity"))
from finetune_step import Beit, parameter_groups  # noqa: E402


def load_images(root):
    with gzip.open(os.path.join(root, "train-images-idx3-ubyte.gz")) as f:
        imgs = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(root, "train-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return torch.from_numpy(imgs.copy()), torch.from_numpy(labels.astype(np.int64))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--model", default="{}")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    o = json.loads(a.model)
    images, labels = load_images(a.data)
    model = Beit(o)
    model.train()
    depth = o["depth"]
    scales = [0.75 ** (depth + 1 - i) for i in range(depth + 2)]
    groups = parameter_groups(model, 0.05, {"pos_embed", "cls_token"}, scales)
    for g in groups:
        del g["names"]
    opt = torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.0, eps=1e-8, betas=(0.9, 0.999))
    S = o["img_size"]
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(images.shape[0], generator=g)

    def step(i):
        idx = order[i * a.batch:(i + 1) * a.batch]
        x = images[idx].float().div_(255).expand(-1, 3, -1, -1)
        x = F.pad(x, (4, 4, 4, 4))
        ox = torch.randint(0, 9, (a.batch,), generator=g)
        oy = torch.randint(0, 9, (a.batch,), generator=g)
        flip = torch.rand(a.batch, generator=g) < 0.5
        crops = torch.stack([x[b, :, oy[b]:oy[b] + S, ox[b]:ox[b] + S] for b in range(a.batch)])
        crops = torch.where(flip[:, None, None, None], crops.flip(-1), crops)
        x = (crops - 0.5) / 0.5
        for grp in opt.param_groups:
            grp["lr"] = 1e-3 * grp["lr_scale"]
            if grp["weight_decay"] > 0:
                grp["weight_decay"] = 0.05
        loss = F.cross_entropy(model(x), labels[idx], label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for grp in opt.param_groups for p in grp["params"]], 1.0)
        opt.step()
        return loss.item()

    step(0)  # warm-up
    t0 = time.perf_counter()
    for i in range(1, a.steps + 1):
        step(i)
    dt = time.perf_counter() - t0
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "batch": a.batch, "steps": a.steps,
                      "seconds": dt, "images_per_s": a.steps * a.batch / dt}))


if __name__ == "__main__":
    main()
