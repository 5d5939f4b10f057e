#!/usr/bin/python3
"""Python twin of scripts/bench/beit-forward.ts: the same BEiT (MOOD's fine-tuning layout:
beit_base_patch16_224, per-block relative position bias, layer scale 0.1, mean pooling, drop path
0.1) written in plain PyTorch, timed the same way. Prints one JSON object.

Run with Debian's torch:  OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 scripts/bench/beit-forward.py

--serve: build the model, print "ready", then run one step per stdin line ("eval" or "train") and
print its seconds as JSON. beit-forward.ts drives it step for step, alternating with its own steps,
so that both see the same background load on a shared machine.
"""
import sys
import argparse
import contextlib
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
from finetune_step import drop_path  # noqa: E402


class Attention(nn.Module):
    def __init__(self, dim, heads, grid):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        rows = (2 * grid - 1) ** 2 + 3
        self.relative_position_bias_table = nn.Parameter(torch.randn(rows, heads) * 0.02)
        n = grid * grid
        idx = torch.zeros(n + 1, n + 1, dtype=torch.long)
        for i in range(n):
            for j in range(n):
                dh, dw = i // grid - j // grid, i % grid - j % grid
                idx[i + 1, j + 1] = (dh + grid - 1) * (2 * grid - 1) + dw + grid - 1
        idx[0, :] = rows - 3
        idx[:, 0] = rows - 2
        idx[0, 0] = rows - 1
        self.register_buffer("relative_position_index", idx)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).reshape(B, N, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        rel = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(N, N, -1)
        attn = (attn + rel.permute(2, 0, 1).unsqueeze(0)).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class Block(nn.Module):
    def __init__(self, dim, heads, grid, dp):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, grid)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.gamma_1 = nn.Parameter(0.1 * torch.ones(dim))
        self.gamma_2 = nn.Parameter(0.1 * torch.ones(dim))
        self.dp = dp

    def forward(self, x):
        x = x + drop_path(self.gamma_1 * self.attn(self.norm1(x)), self.dp, self.training)
        return x + drop_path(self.gamma_2 * self.fc2(F.gelu(self.fc1(self.norm2(x)))), self.dp, self.training)


class Beit(nn.Module):
    def __init__(self, img=224, patch=16, dim=768, depth=12, heads=12, classes=1000, drop_path_rate=0.1):
        super().__init__()
        grid = img // patch
        self.proj = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        dpr = [drop_path_rate * i / (depth - 1) for i in range(depth)]
        self.blocks = nn.ModuleList([Block(dim, heads, grid, dpr[i]) for i in range(depth)])
        self.fc_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), 1)
        for b in self.blocks:
            x = b(x)
        return self.head(self.fc_norm(x[:, 1:].mean(1)))


CONFIGS = {  # the named configs of native/core/beit.cpp
    "beit_base_patch16_224": dict(dim=768, depth=12, heads=12),
    "beit_large_patch16_224": dict(dim=1024, depth=24, heads=16),
}


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, iters, min_seconds, device="cpu"):
    fn()  # warm-up
    fn()
    sync(device)
    n, t0 = 0, time.perf_counter()
    while n < iters or time.perf_counter() - t0 < min_seconds:
        fn()
        n += 1
    sync(device)
    return n, time.perf_counter() - t0


def serve(steps, model, device):
    print("ready", flush=True)
    for line in sys.stdin:
        part = line.strip()
        if part not in steps:
            raise SystemExit("beit-forward.py --serve: unknown step %r (expected eval or train)" % part)
        model.train(part == "train")
        sync(device)
        t0 = time.perf_counter()
        steps[part]()
        sync(device)
        print(json.dumps({"part": part, "seconds": time.perf_counter() - t0}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-batch", type=int, default=8)
    ap.add_argument("--train-batch", type=int, default=4)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=0.0)
    # GPU twin of native/tests/beit_step_bench.cpp (scripts/gpu-check.sh): same flags.
    ap.add_argument("--model", default="beit_base_patch16_224", choices=sorted(CONFIGS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--serve", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Beit(**CONFIGS[a.model]).to(a.device)
    xe = torch.randn(a.eval_batch, 3, 224, 224, device=a.device)
    xt = torch.randn(a.train_batch, 3, 224, 224, device=a.device)
    yt = torch.arange(a.train_batch, device=a.device) % 1000
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(a.amp)

    def amp():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=a.device.split(":")[0], dtype=amp_dtype)

    def eval_step():
        with torch.no_grad(), amp():
            model(xe)

    def train_step():
        for p in model.parameters():
            p.grad = None
        with amp():
            loss = F.cross_entropy(model(xt).float(), yt)
        loss.backward()

    if a.serve:
        serve({"eval": eval_step, "train": train_step}, model, a.device)
        return
    model.eval()
    n_e, t_e = (0, 1.0) if a.train_only else timed(eval_step, a.iters, a.min_seconds, a.device)
    model.train()
    n_t, t_t = timed(train_step, a.iters, a.min_seconds, a.device)
    print(json.dumps({
        "impl": "pytorch",
        "model": a.model,
        "device": a.device,
        "amp": a.amp,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "eval": {"batch": a.eval_batch, "iters": n_e, "seconds": t_e, "images_per_s": n_e * a.eval_batch / t_e},
        "train": {"batch": a.train_batch, "iters": n_t, "seconds": t_t, "images_per_s": n_t * a.train_batch / t_t},
    }))


if __name__ == "__main__":
    main()
