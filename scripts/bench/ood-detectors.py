"""numpy/sklearn twin of scripts/bench/ood-detectors.ts: fit+score time of mahalanobis, cos, knn, kmeans,
gauss (the reference's formulas, MOOD normalisation) and sklearn roc_auc_score over the same scores.

  python3 ood-detectors.py DATA_DIR --threads 2 --metrics mahalanobis,cos,knn,kmeans,gauss --knn-k 50
      --kmeans-k 10 --kmeans-n-init 3

Prints one JSON line: {metric: {seconds, auroc}}. Thread count via OMP/OPENBLAS env set by the caller.
"""
import argparse, json, os, sys, time
import numpy as np

p = argparse.ArgumentParser()
p.add_argument('dir')
p.add_argument('--metrics', default='mahalanobis,cos,knn,kmeans,gauss')
p.add_argument('--knn-k', type=int, default=50)
p.add_argument('--kmeans-k', type=int, default=10)
p.add_argument('--kmeans-n-init', type=int, default=3)
p.add_argument('--block', type=int, default=2048)
a = p.parse_args()

from sklearn.metrics import roc_auc_score
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.covariance import ledoit_wolf
from sklearn.cluster import KMeans

L = lambda n: np.load(os.path.join(a.dir, n + '.npy'))
ftrain, ftest, food = L('train'), L('test'), L('ood')
nrm = lambda f: f / (np.linalg.norm(f, axis=-1, keepdims=True) + 1e-10)


def mahalanobis(tr, te_list):
    std = np.linalg.pinv(np.cov(tr.T, bias=True))
    mean = np.mean(tr, axis=0, keepdims=True)
    return [np.sum((te - mean) * (std.dot((te - mean).T)).T, axis=-1) for te in te_list]


def gauss(tr, te_list):
    std = np.linalg.pinv(ledoit_wolf(tr)[0])
    mean = np.mean(tr, axis=0, keepdims=True)
    D = tr.shape[1]
    out = []
    for te in te_list:
        d = np.sum((te - mean) * (std.dot((te - mean).T)).T, axis=-1)
        # log of ood_utils' k * exp(-d/2) (the density itself underflows to 0 at D = 768)
        out.append(-(D / 2) * np.log(2 * np.pi) - 0.5 * np.log(np.linalg.norm(std)) - 0.5 * d)
    return out


def cos(tr, te_list):
    out = []
    for te in te_list:
        out.append(np.concatenate([cosine_similarity(te[s:s + a.block], tr).max(1) for s in range(0, len(te), a.block)]))
    return out


def knn(tr, te_list):
    k = a.knn_k
    t2 = (tr.astype(np.float32) ** 2).sum(1)
    out = []
    for te in te_list:
        parts = []
        for s in range(0, len(te), a.block):
            x = te[s:s + a.block]
            d2 = t2[None, :] - 2 * x @ tr.T
            kth = np.partition(d2, k - 1, axis=1)[:, k - 1]
            parts.append(np.sqrt(np.maximum(kth + (x ** 2).sum(1), 0)))
        out.append(np.concatenate(parts))
    return out


def kmeans(tr, te_list):
    km = KMeans(n_clusters=a.kmeans_k, init='k-means++', n_init=a.kmeans_n_init, random_state=0).fit(tr)
    return [km.transform(te).min(1) for te in te_list]


fns = dict(mahalanobis=mahalanobis, gauss=gauss, cos=cos, knn=knn, kmeans=kmeans)
higher_is_id = {'cos', 'gauss'}
res = {}
for m in a.metrics.split(','):
    t0 = time.perf_counter()
    tr, te, oo = nrm(ftrain), nrm(ftest), nrm(food)
    s_in, s_ood = fns[m](tr, [te, oo])
    sec = time.perf_counter() - t0
    sign = -1 if m in higher_is_id else 1
    res[m] = dict(seconds=sec, auroc=float(roc_auc_score(np.r_[np.zeros(len(s_in)), np.ones(len(s_ood))], sign * np.r_[s_in, s_ood])))

s = L('auroc_scores')
n_in = int(np.load(os.path.join(a.dir, 'auroc_n_in.npy'))[0])
y = np.r_[np.zeros(n_in), np.ones(len(s) - n_in)]
t0 = time.perf_counter()
v = roc_auc_score(y, s)
res['auroc'] = dict(seconds=time.perf_counter() - t0, auroc=float(v))
import sklearn
res['versions'] = dict(numpy=np.__version__, sklearn=sklearn.__version__)
print(json.dumps(res))
