"""Python twin of scripts/bench/checkpoint-load.ts (run with Debian's /usr/bin/python3 + python3-torch).

  write OUT   torch.save a synthetic BEiT-base checkpoint as MOOD's fine-tuning writes it
              ({'model': OrderedDict, 'epoch', 'args': argparse.Namespace, 'scaler'}), keys and shapes
              from tests/fixtures/official/official_keys_beit_base_patch16_224.json (variant mood_finetune).
              Prints {"file", "tensor_bytes", "tensors"} as JSON.
  load FILE   time torch.load(FILE, map_location='cpu') (every storage read into memory), with
              torch.set_num_threads(2) (the parent sets OMP_WAIT_POLICY=PASSIVE). Prints
              {"seconds", "vmhwm_kb", "vmrss_before_kb", "tensor_bytes"} as JSON; VmHWM is this
              process's peak resident set from /proc/self/status.
"""
import argparse
import collections
import json
import os
import sys
import time


def status_kb(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return -1


def write(out, keys_file):
    import torch
    spec = json.load(open(keys_file))['variants']['mood_finetune']
    g = torch.Generator().manual_seed(0)
    sd = collections.OrderedDict()
    for key, shape, dtype, kind in spec['keys']:
        if dtype == 'int64':
            sd[key] = torch.randint(0, 2000, shape, dtype=torch.int64, generator=g)
        else:
            sd[key] = torch.randn(shape, generator=g, dtype=getattr(torch, dtype))
    args = argparse.Namespace(model='beit_base_patch16_224', lr=5e-4, layer_decay=0.65, epochs=100,
                              nb_classes=1000, input_size=224, window_size=(14, 14), patch_size=(16, 16))
    ck = {'model': sd, 'epoch': 99, 'args': args,
          'scaler': {'scale': 65536.0, 'growth_factor': 2.0, 'backoff_factor': 0.5, 'growth_interval': 2000, '_growth_tracker': 0}}
    torch.save(ck, out)
    nbytes = sum(t.numel() * t.element_size() for t in sd.values())
    print(json.dumps({'file': out, 'tensor_bytes': nbytes, 'tensors': len(sd)}))


def load(path):
    import torch
    torch.set_num_threads(2)
    before = status_kb('VmRSS')
    t0 = time.perf_counter()
    ck = torch.load(path, map_location='cpu')
    secs = time.perf_counter() - t0
    nbytes = sum(t.numel() * t.element_size() for t in ck['model'].values())
    print(json.dumps({'seconds': secs, 'vmhwm_kb': status_kb('VmHWM'), 'vmrss_before_kb': before, 'tensor_bytes': nbytes}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument('mode', choices=['write', 'load'])
    p.add_argument('file')
    p.add_argument('--keys', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'tests', 'fixtures', 'official', 'official_keys_beit_base_patch16_224.json'))
    a = p.parse_args()
    if a.mode == 'write':
        write(a.file, a.keys)
    else:
        load(a.file)


if __name__ == '__main__':
    sys.exit(main())
