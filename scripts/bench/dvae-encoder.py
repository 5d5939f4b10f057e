#!/usr/bin/python3
"""Python twin of scripts/bench/dvae-encoder.ts: the DALL-E encoder (OpenAI's dall_e.encoder.Encoder
architecture: 7x7 input conv, 4 groups of residual blocks with 1x1 id paths and post-gain 1/n_layers^2,
2x2 max-pools, ReLU + 1x1 output conv) written with torch.nn.functional (the dall_e package is not
installed here; its forward is these same calls), float32 on the CPU, map_pixels then argmax ids, under
no_grad. Prints one JSON object.

  OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 scripts/bench/dvae-encoder.py --threads 2 --batch 8
"""
import argparse
import json
import os
import time

import torch
import torch.nn.functional as F


def conv(n_in, n_out, kw, g):
    w = torch.randn(n_out, n_in, kw, kw, generator=g) / (n_in * kw * kw) ** 0.5
    return w, torch.zeros(n_out)


def build(n_hid, n_blk, vocab, g):
    groups, width = [], n_hid
    n_layers = 4 * n_blk
    for gi in range(4):
        out = n_hid * 2 ** gi
        blocks = []
        for i in range(n_blk):
            n_in = width if i == 0 else out
            h = out // 4
            blocks.append({"id": conv(n_in, out, 1, g) if n_in != out else None,
                           "res": [conv(n_in, h, 3, g), conv(h, h, 3, g), conv(h, h, 3, g), conv(h, out, 1, g)]})
        groups.append(blocks)
        width = out
    return {"input": conv(3, n_hid, 7, g), "groups": groups, "output": conv(width, vocab, 1, g), "gain": 1 / n_layers ** 2}


def c(x, wb):
    return F.conv2d(x, wb[0], wb[1], padding=(wb[0].shape[-1] - 1) // 2)


def forward(m, x):
    x = c(x, m["input"])
    for gi, blocks in enumerate(m["groups"]):
        for b in blocks:
            h = x
            for wb in b["res"]:
                h = c(F.relu(h), wb)
            x = (c(x, b["id"]) if b["id"] is not None else x) + m["gain"] * h
        if gi < 3:
            x = F.max_pool2d(x, 2)
    return c(F.relu(x), m["output"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--n-hid", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=2.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    m = build(a.n_hid, 2, a.vocab, g)
    x = torch.rand(a.batch, 3, a.size, a.size, generator=g)

    def step():
        with torch.no_grad():
            return forward(m, (1 - 2 * 0.1) * x + 0.1).argmax(1)

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
