#!/usr/bin/python3
"""Statistics of the reference BEiT blockwise masking algorithm (masking_generator.MaskingGenerator),
re-stated here from its description so the test needs no copy of the BEiT repository.

  /usr/bin/python3 scripts/parity/pretrain_masking.py '{"height":14,"width":14,"num":75,"min":16,
      "max":null,"min_aspect":0.3,"draws":4000,"seed":0}'

Prints JSON: mean/min/max masked count, fraction of masks at the target, blocks per mask, block
(h, w) histogram and per-position masking frequency. Python's own `random` drives it, as in the reference.
"""
import json
import math
import random
import sys


def draw(cfg):
    H, W, num = cfg["height"], cfg["width"], cfg["num"]
    lo = cfg.get("min", 4)
    hi = cfg.get("max") or num
    min_aspect = cfg.get("min_aspect", 0.3)
    max_aspect = cfg.get("max_aspect") or 1 / min_aspect
    log_ar = (math.log(min_aspect), math.log(max_aspect))
    mask = [[0] * W for _ in range(H)]
    blocks = []

    def one_block(limit):
        added = 0
        for _ in range(10):
            area = random.uniform(lo, limit)
            ar = math.exp(random.uniform(*log_ar))
            h = int(round(math.sqrt(area * ar)))
            w = int(round(math.sqrt(area / ar)))
            if w < W and h < H:
                top = random.randint(0, H - h)
                left = random.randint(0, W - w)
                covered = sum(mask[i][j] for i in range(top, top + h) for j in range(left, left + w))
                if 0 < h * w - covered <= limit:
                    blocks.append((h, w))
                    for i in range(top, top + h):
                        for j in range(left, left + w):
                            if not mask[i][j]:
                                mask[i][j] = 1
                                added += 1
                if added > 0:
                    break
        return added

    count = 0
    while count < num:
        got = one_block(min(num - count, hi))
        if got == 0:
            break
        count += got
    return mask, blocks


def main():
    cfg = json.loads(sys.argv[1])
    random.seed(cfg.get("seed", 0))
    n = cfg.get("draws", 2000)
    H, W = cfg["height"], cfg["width"]
    counts, nblocks, shapes = [], [], {}
    freq = [0.0] * (H * W)
    for _ in range(n):
        mask, blocks = draw(cfg)
        flat = [v for row in mask for v in row]
        counts.append(sum(flat))
        nblocks.append(len(blocks))
        for k, v in enumerate(flat):
            freq[k] += v
        for h, w in blocks:
            key = "%dx%d" % (h, w)
            shapes[key] = shapes.get(key, 0) + 1
    total_blocks = sum(nblocks)
    print(json.dumps({
        "mean_count": sum(counts) / n,
        "min_count": min(counts),
        "max_count": max(counts),
        "frac_at_target": sum(c == cfg["num"] for c in counts) / n,
        "blocks_per_mask": total_blocks / n,
        "shapes": {k: v / total_blocks for k, v in sorted(shapes.items())},
        "position_freq": [f / n for f in freq],
    }))


if __name__ == "__main__":
    main()
