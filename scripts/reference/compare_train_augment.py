#!/usr/bin/python3
"""`mood eval-features --train-features train-augment` against the reference twin on one checkpoint, over
several seeds (one-class Fashion-MNIST, Mahalanobis), plus our default eval-transform figure.

Two comparisons, because the Mahalanobis score itself is numerically ill-posed on these features: the
final LayerNorm (fc_norm) makes the training covariance singular to rounding (its null direction is
1/gamma), and numpy's pinv (rcond 1e-15) inverts that rounding-noise eigenvalue, so the score carries a
noise term whose value depends on the linear-algebra path. Hence:
  - end to end: our AUROC (our features, our detector) vs the twin's (twin features, numpy as ood_utils);
  - augmentation only: numpy's ood_utils Mahalanobis on OUR cached train-augment features vs the twin's
    — same detector code on both sides, so any difference is the training-feature augmentation.

Runs, for each seed S:
  node bin/mood.js eval-features --ckpt CKPT --data_set fashion_mnist --class_idx C --metric mahalanobis \
      --train-features train-augment --seed S --quiet --json-out OUT/ours-S.json --cache-dir OUT/cache
then once with the default --train-features eval-transform, and the twin
  /usr/bin/python3 scripts/reference/eval_with_features_twin.py --ckpt CKPT --class_idx C --seeds ... --json OUT/twin.json
(seeds whose result files are already in OUT are reused: ours-S.json, and runs in any twin*.json)
and prints JSON: per-seed AUROC (mean over the OOD classes, %) of both sides, their means and sample
standard deviations, the two-sample difference in units of its standard error, and the per-class means.

usage: /usr/bin/python3 scripts/reference/compare_train_augment.py --ckpt CKPT [--class_idx 1] [--seeds 0,1,2,3,4] [--out DIR]
"""
import argparse
import json
import math
import os
import glob
import subprocess
import sys

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, os.path.join(ROOT, 'scripts', 'reference'))
from eval_with_features_twin import one_class_results  # noqa: E402


def run(cmd):
    print('$ ' + ' '.join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def stats(v):
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return m, sd


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--ckpt', required=True)
    p.add_argument('--class_idx', type=int, default=1)
    p.add_argument('--seeds', default='0,1,2,3,4')
    p.add_argument('--data_path', default='/usr/share/datasets/fashion-mnist')
    p.add_argument('--out', default='compare-train-augment')
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    seeds = [int(s) for s in a.seeds.split(',')]
    mood = [os.environ.get('NODE', 'node'), os.path.join(ROOT, 'bin', 'mood.js'), 'eval-features', '--ckpt', a.ckpt, '--data_set', 'fashion_mnist',
            '--data_path', a.data_path, '--class_idx', str(a.class_idx), '--metric', 'mahalanobis', '--quiet',
            '--cache-dir', os.path.join(a.out, 'cache'), '--results-dir', a.out]
    ours = []
    for s in seeds:
        f = os.path.join(a.out, 'ours-%d.json' % s)
        if not os.path.exists(f):
            run(mood + ['--train-features', 'train-augment', '--seed', str(s), '--json-out', f])
        ours.append(json.load(open(f)))
    f = os.path.join(a.out, 'ours-eval-transform.json')
    if not os.path.exists(f):
        run(mood + ['--json-out', f])
    default = json.load(open(f))
    runs = {}
    for tf in sorted(glob.glob(os.path.join(a.out, 'twin*.json'))):
        for r in json.load(open(tf))['runs']:
            runs[r['seed']] = r
    todo = [s for s in seeds if s not in runs]
    if todo:
        tf = os.path.join(a.out, 'twin-%s.json' % '-'.join(map(str, todo)))
        run(['/usr/bin/python3', os.path.join(ROOT, 'scripts', 'reference', 'eval_with_features_twin.py'), '--ckpt', a.ckpt, '--data_path', a.data_path,
             '--class_idx', str(a.class_idx), '--seeds', ','.join(map(str, todo)), '--json', tf])
        for r in json.load(open(tf))['runs']:
            runs[r['seed']] = r
    twin_runs = [runs[s] for s in seeds]

    # numpy's ood_utils Mahalanobis on our cached features (the extraction records name the entries).
    def numpy_auroc(j):
        entry = {e['what']: e['entry'] for e in j['extraction']}
        test = np.load(os.path.join(entry['fashion_mnist/test'], 'features.npy'))
        labels = np.load(os.path.join(entry['fashion_mnist/test'], 'labels.npy'))
        train = np.load(os.path.join(entry['fashion_mnist/train'], 'features.npy'))
        return 100 * one_class_results(train, test, labels, a.class_idx, int(labels.max()) + 1)[1]['auroc']

    o = [100 * j['averages'][0]['auroc'] for j in ours]
    t = [100 * r['auroc'] for r in twin_runs]
    on = [numpy_auroc(j) for j in ours]
    (mo, so), (mt, st), (mn, sn) = stats(o), stats(t), stats(on)
    se = math.sqrt(so ** 2 / len(o) + st ** 2 / len(t))
    se_n = math.sqrt(sn ** 2 / len(on) + st ** 2 / len(t))
    per_class_ours = {}
    for j in ours:
        for r in j['results']:
            per_class_ours.setdefault(r['ood'], []).append(100 * r['auroc'])
    per_class_twin = {}
    for r in twin_runs:
        for c in r['per_class']:
            per_class_twin.setdefault(str(c['ood']), []).append(100 * c['auroc'])
    print(json.dumps(dict(
        ckpt=os.path.abspath(a.ckpt), class_idx=a.class_idx, seeds=seeds,
        ours_auroc=o, twin_auroc=t,
        ours_mean=mo, ours_sd=so, twin_mean=mt, twin_sd=st, twin_range=[min(t), max(t)],
        difference=mo - mt, difference_in_standard_errors=(mo - mt) / se if se > 0 else None,
        ours_features_numpy_detector_auroc=on, ours_features_numpy_detector_mean=mn, ours_features_numpy_detector_sd=sn,
        augmentation_difference=mn - mt, augmentation_difference_in_standard_errors=(mn - mt) / se_n if se_n > 0 else None,
        eval_transform_numpy_detector_auroc=numpy_auroc(default),
        ours_n_train=[j['averages'][0]['n_train'] for j in ours], twin_n_train=[r['n_train'] for r in twin_runs],
        per_class_mean_ours={k: sum(v) / len(v) for k, v in per_class_ours.items()},
        per_class_mean_twin={k: sum(v) / len(v) for k, v in per_class_twin.items()},
        eval_transform_auroc=100 * default['averages'][0]['auroc'],
        eval_transform_minus_train_augment=100 * default['averages'][0]['auroc'] - mo,
    ), indent=2))


if __name__ == '__main__':
    main()
