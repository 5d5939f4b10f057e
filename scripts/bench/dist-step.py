"""PyTorch DDP counterpart of scripts/bench/dist-step.ts: train-step time (forward, cross-entropy,
backward with DDP's bucketed Gloo all-reduce, clip_grad_norm_, AdamW) of the same small BEiT shape
with 1 process and with 2 processes (same per-process batch). The model class is the one of
scripts/bench/beit-forward.py.

Run with Debian's torch:  OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 scripts/bench/dist-step.py
Prints one JSON line.
"""
import argparse
import importlib.util
import json
import os
import socket
import statistics
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

HERE = os.path.dirname(os.path.abspath(__file__))


def load_beit():
    spec = importlib.util.spec_from_file_location("beit_forward_bench", os.path.join(HERE, "beit-forward.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Beit


def worker(rank, world, port, a, out_path):
    torch.set_num_threads(a.threads)
    if world > 1:
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(port)
        dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = load_beit()(img=32, patch=8, dim=192, depth=6, heads=3, classes=10, drop_path_rate=0.0)
    model.train()
    params = sum(p.numel() for p in model.parameters())
    net = DDP(model, bucket_cap_mb=a.bucket_mb) if world > 1 else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    x = torch.sin(torch.arange(a.batch * 3 * 32 * 32, dtype=torch.float32)).reshape(a.batch, 3, 32, 32)
    y = torch.arange(a.batch) % 10
    times = []
    for it in range(a.steps + 2):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()
        ms = (time.perf_counter() - t0) * 1e3
        if it >= 2:
            times.append(ms)
    med = torch.tensor([statistics.median(times)], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(med, op=dist.ReduceOp.MAX)  # the slower rank's median
        dist.destroy_process_group()
    if rank == 0:
        with open(out_path, "w") as f:
            json.dump({"step_ms": med.item(), "params": params}, f)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def run(world, a):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.json")
        mp.spawn(worker, args=(world, free_port(), a, out), nprocs=world, join=True)
        with open(out) as f:
            return json.load(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--bucket-mb", type=float, default=1)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    one = run(1, a)
    two = run(2, a)
    print(json.dumps({
        "impl": "pytorch-ddp",
        "torch": torch.__version__,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "threads_per_process": a.threads,
        "params": one["params"],
        "one_process": {"step_ms": one["step_ms"]},
        "two_processes_ddp": {"step_ms": two["step_ms"]},
        "scaling_efficiency": one["step_ms"] / two["step_ms"],
    }))


if __name__ == "__main__":
    main()
