"""torchvision twin of scripts/bench/data-pipeline.ts: ImageFolder + PIL + DataLoader with the same
number of workers, eval (Resize(256, bicubic) + CenterCrop(224)) and train (RandomResizedCrop(224,
bicubic) + flip + ToTensor + Normalize + RandomErasing(0.25, pixel noise)) on the same JPEG set.
Prints {"eval": img/s, "train": img/s, "train_ra": img/s, "<mode>_cpu_ms": CPU ms per image in-process}.

  OMP_WAIT_POLICY=PASSIVE python3 data-pipeline.py ROOT WORKERS BATCH ROUNDS
"""
import json
import sys
import time

import torch
from PIL import ImageFile
from torch.utils.data import DataLoader
from torchvision import datasets, transforms as T

ImageFile.LOAD_TRUNCATED_IMAGES = True
root, workers, batch, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(1)  # each worker process does one image at a time, like DataLoader workers do
norm = T.Normalize([0.5] * 3, [0.5] * 3)
bicubic = T.InterpolationMode.BICUBIC
tfs = {
    'eval': T.Compose([T.Resize(256, interpolation=bicubic), T.CenterCrop(224), T.ToTensor(), norm]),
    'train': T.Compose([T.RandomResizedCrop(224, interpolation=bicubic), T.RandomHorizontalFlip(), T.ToTensor(), norm,
                        T.RandomErasing(p=0.25, value='random')]),
    # timm is not installed here: torchvision's RandAugment (2 ops, magnitude 9, PIL ops) stands in for
    # timm's rand-m9-mstd0.5-inc1 (same PIL operations, similar cost).
    'train_ra': T.Compose([T.RandomResizedCrop(224, interpolation=bicubic), T.RandomHorizontalFlip(),
                           T.RandAugment(2, 9, interpolation=bicubic, fill=[128, 128, 128]), T.ToTensor(), norm,
                           T.RandomErasing(p=0.25, value='random')]),
}
out = {}
for name, tf in tfs.items():
    ds = datasets.ImageFolder(root, transform=tf)
    loader = DataLoader(ds, batch_size=batch, shuffle=name != 'eval', num_workers=workers, drop_last=False,
                        persistent_workers=workers > 0)
    best = 0.0
    for r in range(rounds + 1):  # round 0 warms the workers up
        t0 = time.perf_counter()
        n = 0
        for x, y in loader:
            n += x.shape[0]
        rate = n / (time.perf_counter() - t0)
        if r > 0:
            best = max(best, rate)
    out[name] = best
    # CPU time per image of the transform itself, in this process (no worker IPC): a figure that moves
    # less with the load of a shared machine than images/s.
    ds = datasets.ImageFolder(root, transform=tf)
    cpu = float('inf')
    for r in range(rounds):
        t0 = time.process_time()
        for i in range(len(ds)):
            ds[i]
        cpu = min(cpu, (time.process_time() - t0) / len(ds) * 1e3)
    out[name + '_cpu_ms'] = cpu
print(json.dumps(out))
