"""Python twin of dispatch.ts: the same work in eager PyTorch, in its best thread setting."""
import json, os, sys, time
import torch

torch.set_num_threads(int(os.environ.get('BENCH_THREADS', '2')))

def per_call_us(fn, iters, repeats=5):
    best = float('inf')
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        best = min(best, (time.perf_counter() - t0) / iters * 1e6)
    return best

a = torch.randn(16); b = torch.randn(16)
m1 = torch.randn(512, 512); m2 = torch.randn(512, 512)
for _ in range(20): m1 @ m2
out = {
    'add16_us': per_call_us(lambda: a + b, 20000),
    'add16_read_us': per_call_us(lambda: (a + b).numpy(), 20000),
    'matmul512_us': per_call_us(lambda: m1 @ m2, 50),
    'threads': torch.get_num_threads(),
    'torch': torch.__version__,
}
json.dump(out, sys.stdout)
