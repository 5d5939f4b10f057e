#!/usr/bin/python3
"""A PyTorch/torchvision twin of MOOD's eval_with_features.py (MOODv1) for one-class Mahalanobis on
Fashion-MNIST, to check `mood eval-features --train-features train-augment` against (docs/eval.md).

What it reproduces from the reference, step by step:
  - data: Fashion-MNIST (Debian's dataset-fashion-mnist idx files) as 32-px RGB images — each 28x28
    grey image resized with PIL bicubic to 32x32 and converted to RGB, i.e. the dataset stored at the
    model's input size, as a CIFAR-style set would be; the training split keeps class --class_idx
    (get_subclass_dataset), the test split keeps every image;
  - ID training features: build_transform(is_train=True) at the reference's argparse defaults
    (timm_transforms.py: RandomCrop(32, padding 4), flip, RandAugment rand-m9-mstd0.5-inc1 with bicubic
    filters and fill round(255 * mean), ToTensor, Normalize(0.5, 0.5), RandomErasing 0.25 pixel x1),
    loaded with RandomSampler + drop_last=True at --batch_size 8;
  - test features: ToTensor + Normalize (no resize at 32 px), SequentialSampler;
  - forward_features of the BEiT in the checkpoint (the plain-PyTorch BEiT of
    scripts/parity/finetune_step.py, loaded from the state dict, architecture read from its shapes);
  - ood_utils: rows L2-normalised (+1e-10), mahalanobis = (f - mu) pinv(cov(bias=True)) (f - mu)^T,
    per OOD class AUROC (sklearn roc_auc_score, ID = 0), AUPR (average_precision_score) and
    FPR95 (share of OOD scores below the ID 95th percentile); the `all` line is np.mean over classes.

Unlike the reference (which seeds only torch), `random` and numpy are seeded too, so a seed gives one
reproducible draw of the augmentation; the run-to-run spread comes from running several seeds. Test
features are computed once per invocation and reused for every seed.

usage: /usr/bin/python3 scripts/reference/eval_with_features_twin.py --ckpt CKPT --class_idx 1 \
           --seeds 0,1,2,3,4 [--data_path /usr/share/datasets/fashion-mnist] [--json out.json]
"""
import argparse
import gzip
import json
import os
import random
import sys
import time

import numpy as np
import sklearn.metrics as skm
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', 'parity'))
from timm_transforms import build_eval_transform, build_train_transform  # noqa: E402
from finetune_step import Beit  # noqa: E402


# ---- data -----------------------------------------------------------------------------------------

def read_idx(path):
    with (gzip.open(path) if path.endswith('.gz') else open(path, 'rb')) as f:
        b = f.read()
    ndim = b[3]
    dims = [int.from_bytes(b[4 + 4 * i: 8 + 4 * i], 'big') for i in range(ndim)]
    return np.frombuffer(b, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def locate(root, stem):
    for d in (root, os.path.join(root, 'raw'), os.path.join(root, 'FashionMNIST', 'raw')):
        for f in (stem + '.gz', stem):
            if os.path.exists(os.path.join(d, f)):
                return os.path.join(d, f)
    raise SystemExit('no %s[.gz] under %s' % (stem, root))


class FashionMnist32(torch.utils.data.Dataset):
    """Fashion-MNIST split as 32x32 RGB PIL images (bicubic resize of the 28x28 grey originals)."""

    def __init__(self, root, train, size, transform, keep_class=None):
        prefix = 'train' if train else 't10k'
        x = read_idx(locate(root, prefix + '-images-idx3-ubyte'))
        y = read_idx(locate(root, prefix + '-labels-idx1-ubyte')).astype(np.int64)
        if keep_class is not None:
            idx = np.nonzero(y == keep_class)[0]
            x, y = x[idx], y[idx]
        self.images = [Image.fromarray(a, 'L').resize((size, size), Image.BICUBIC).convert('RGB') for a in x]
        self.targets = y
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.transform(self.images[i]), int(self.targets[i])


# ---- model ----------------------------------------------------------------------------------------

def beit_options(sd, img_size):
    """The architecture from the state dict's names and shapes (per-block relative position bias)."""
    if 'rel_pos_bias.relative_position_bias_table' in sd:
        raise SystemExit('shared relative position bias is not supported by this twin')
    w = sd['patch_embed.proj.weight']
    depth = len({k.split('.')[1] for k in sd if k.startswith('blocks.')})
    table = sd.get('blocks.0.attn.relative_position_bias_table')
    if table is None:
        raise SystemExit('this twin reads the head count from the relative position tables; the checkpoint has none')
    dim = w.shape[0]
    return dict(img_size=img_size, patch_size=w.shape[-1], in_chans=w.shape[1], embed_dim=dim, depth=depth,
                num_heads=table.shape[1], mlp_ratio=sd['blocks.0.mlp.fc1.weight'].shape[0] / dim,
                qkv_bias='blocks.0.attn.q_bias' in sd, use_rel_pos_bias=True, use_abs_pos_emb='pos_embed' in sd,
                use_mean_pooling='fc_norm.weight' in sd, init_values='blocks.0.gamma_1' in sd, layer_norm_eps=1e-6,
                num_classes=sd['head.weight'].shape[0])


def load_model(ckpt, img_size):
    sd = torch.load(ckpt, map_location='cpu')
    for key in ('model', 'state_dict', 'module'):
        if isinstance(sd, dict) and key in sd:
            sd = sd[key]
            break
    sd = {k.replace('module.', ''): v for k, v in sd.items()}
    o = beit_options(sd, img_size)
    m = Beit(o)
    missing, unexpected = m.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith('relative_position_index')]
    if missing or unexpected:
        raise SystemExit('checkpoint does not fit the twin BEiT: missing %s, unexpected %s' % (missing, unexpected))
    if any(k.endswith('relative_position_index') for k in m.state_dict() if k not in sd):
        raise SystemExit('the checkpoint has no relative_position_index buffers')
    # forward_features = the forward pass without the classifier head.
    m.head = torch.nn.Identity()
    return m.eval(), o


@torch.no_grad()
def get_features(m, loader):
    out = []
    for img, _ in loader:
        out += list(m(img).numpy())
    return np.array(out)


# ---- ood_utils ------------------------------------------------------------------------------------

def normalise(f):
    return f / (np.linalg.norm(f, axis=-1, keepdims=True) + 1e-10)


def mahalanobis(ftrain, ftest):
    std = np.linalg.pinv(np.cov(ftrain.T, bias=True))
    mean = np.mean(ftrain, axis=0, keepdims=True)
    return np.sum((ftest - mean) * (std.dot((ftest - mean).T)).T, axis=-1)


def one_class_results(ftrain, ftest, test_targets, class_idx, classes):
    ftrain, ftest = normalise(ftrain), normalise(ftest)
    din = mahalanobis(ftrain, ftest[test_targets == class_idx])
    rows = []
    for d in range(classes):
        if d == class_idx:
            continue
        dood = mahalanobis(ftrain, ftest[test_targets == d])
        labels = [0] * len(din) + [1] * len(dood)
        scores = np.concatenate((din, dood))
        rows.append(dict(ood=d, auroc=skm.roc_auc_score(labels, scores), aupr=skm.average_precision_score(labels, scores),
                         fpr95=float(np.sum(dood < np.percentile(din, 95)) / len(dood))))
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ('auroc', 'aupr', 'fpr95')}
    return rows, mean


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--ckpt', required=True)
    p.add_argument('--data_path', default='/usr/share/datasets/fashion-mnist')
    p.add_argument('--class_idx', type=int, default=1)
    p.add_argument('--input_size', type=int, default=32)
    p.add_argument('--batch_size', type=int, default=8)
    p.add_argument('--seeds', default='0', help='comma-separated seeds, one augmented training pass each')
    p.add_argument('--aa', default='rand-m9-mstd0.5-inc1')
    p.add_argument('--color_jitter', type=float, default=0.4)
    p.add_argument('--train_interpolation', default='bicubic')
    p.add_argument('--reprob', type=float, default=0.25)
    p.add_argument('--remode', default='pixel')
    p.add_argument('--recount', type=int, default=1)
    p.add_argument('--json', help='write the results here')
    a = p.parse_args()

    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '2')))
    model, opts = load_model(a.ckpt, a.input_size)
    t0 = time.time()
    test_set = FashionMnist32(a.data_path, False, a.input_size, build_eval_transform())
    test_loader = torch.utils.data.DataLoader(test_set, sampler=torch.utils.data.SequentialSampler(test_set), batch_size=a.batch_size, drop_last=False)
    ftest = get_features(model, test_loader)
    print('test features %s in %.0f s' % (ftest.shape, time.time() - t0), file=sys.stderr)
    classes = int(test_set.targets.max()) + 1
    runs = []
    for seed in [int(s) for s in a.seeds.split(',')]:
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        t0 = time.time()
        tf = build_train_transform(a.input_size, a.aa, a.color_jitter, a.train_interpolation, a.reprob, a.remode, a.recount)
        train_set = FashionMnist32(a.data_path, True, a.input_size, tf, keep_class=a.class_idx)
        train_loader = torch.utils.data.DataLoader(train_set, sampler=torch.utils.data.RandomSampler(train_set), batch_size=a.batch_size, drop_last=True)
        ftrain = get_features(model, train_loader)
        rows, mean = one_class_results(ftrain, ftest, test_set.targets, a.class_idx, classes)
        runs.append(dict(seed=seed, n_train=len(ftrain), per_class=rows, **mean))
        print('seed %d: AUROC %.2f (per OOD class %s) in %.0f s' % (seed, 100 * mean['auroc'], ' '.join('%.1f' % (100 * r['auroc']) for r in rows), time.time() - t0), file=sys.stderr)
    aurocs = np.array([r['auroc'] for r in runs])
    out = dict(ckpt=os.path.abspath(a.ckpt), model=opts, class_idx=a.class_idx, augment=dict(aa=a.aa, color_jitter=a.color_jitter, train_interpolation=a.train_interpolation, reprob=a.reprob, remode=a.remode, recount=a.recount),
               runs=runs, auroc_mean=float(aurocs.mean()), auroc_std=float(aurocs.std(ddof=1)) if len(aurocs) > 1 else 0.0)
    text = json.dumps(out, indent=2)
    if a.json:
        with open(a.json + '.tmp', 'w') as f:
            f.write(text + '\n')
        os.replace(a.json + '.tmp', a.json)
    print(text)


if __name__ == '__main__':
    main()
