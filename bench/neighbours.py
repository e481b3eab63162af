"""Which nearest-neighbour search for the health checks: recall@10, time and peak memory per library.

Workload as in health.py: a self-search of all N compact features (128-dim float16 unit vectors)
for k = 10 cosine neighbours, each leaving itself out. Data: synthetic clusters (2,000 Gaussian
centres around 20 groups, sizes and spreads varying, 0.5% planted near duplicates at similarity
0.9-0.99), and with --real, feature files (N, V, D) through health.compact_features, stacked.
Truth: exact search (above 200k, for 2,000 random queries). Recall@10 counts a neighbour at least
as similar as the true 10th (ties are no error); dup recall: true top-2 neighbours >= 0.8 found.
One process per candidate and size (its own peak RSS), 2 threads. Missing libraries (faiss-cpu,
hnswlib, pynndescent, usearch: pip install) are skipped.

    python bench/neighbours.py --quick      # 10k synthetic, about a minute
    python bench/neighbours.py --sizes 10000 100000 1000000
    python bench/neighbours.py --sizes --real ../main/.bench/review/cifar-clean-0/run/features/mobilenetv2_100-*.npy
"""

from __future__ import annotations

import argparse, importlib.util, json, os, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np

K, THREADS, LIMIT_S = 10, 2, 900
EXACT_MAX = 200_000  # above this an all-pairs search takes over 15 minutes on 2 cores: skipped
PIP = {"faiss": "faiss-cpu", "hnswlib": "hnswlib", "pynndescent": "pynndescent", "usearch": "usearch"}


def unit(a):
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def synthetic(n, d=128, centres=2000, groups=20, seed=0, dup=0.005):
    rng = np.random.default_rng(seed)
    tops = unit(rng.standard_normal((groups, d)))
    c = unit(tops[rng.integers(groups, size=centres)] + 0.12 * rng.standard_normal((centres, d)))
    w, spread = rng.lognormal(0, 1, centres), rng.uniform(0.045, 0.135, centres)
    out = np.empty((n, d), np.float16)
    for s in range(0, n, 65536):
        a = rng.choice(centres, min(65536, n - s), p=w / w.sum())
        out[s : s + len(a)] = unit(c[a] + spread[a, None] * rng.standard_normal((len(a), d)))
    src = rng.choice(n, int(dup * n), replace=False)  # near duplicates of src replace dst
    dst = rng.choice(np.setdiff1d(np.arange(n), src), len(src), replace=False)
    out[dst] = unit(out[src].astype(np.float32) + rng.uniform(0.01, 0.04, (len(src), 1)) * rng.standard_normal((len(src), d)))
    return out


def drop_self(I, k):
    """(n, k) of a self-search asked for k+1: each row without itself (or its last, if itself is missing)."""
    mine = I == np.arange(len(I))[:, None]
    mine[~mine.any(axis=1), -1] = True
    return I[~mine].reshape(len(I), -1)[:, :k]


def run_candidate(name, x, k, t):  # -> (N, k) indices; t: build and query seconds
    n, xf, clock = len(x), x.astype(np.float32), time.perf_counter
    if name.startswith("neighbours") or name == "exact-torch":  # build and search in one call
        from datacleaner import neighbours
        if name != "neighbours":  # exact-torch: the exact path at any N; neighbours-graph: the graph at any N
            neighbours.EXACT_SEARCH = 10**12 if name == "exact-torch" else 0
        t0 = clock()
        idx = neighbours.nearest(x, k=k)[1]
        t["query"] = clock() - t0
        return idx
    if name == "sklearn-brute":
        from sklearn.neighbors import NearestNeighbors
        t0 = clock()
        nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute", n_jobs=THREADS).fit(xf)
        t["build"], t0 = clock() - t0, clock()
        I = nn.kneighbors(xf, return_distance=False)
    elif name.startswith("faiss"):
        import faiss
        faiss.omp_set_num_threads(THREADS)
        t0 = clock()
        if name == "faiss-flat":
            index = faiss.IndexFlatIP(x.shape[1])
        elif name == "faiss-hnsw":
            index = faiss.IndexHNSWFlat(x.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction, index.hnsw.efSearch = 80, 64
        else:  # faiss-ivf: 4 sqrt(N) cells, k-means on 50 vectors per cell, 16 probes
            nlist = max(1, int(4 * np.sqrt(n)))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(x.shape[1]), x.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(xf[np.random.default_rng(0).choice(n, min(n, 50 * nlist), replace=False)])
            index.nprobe = 16
        index.add(xf)
        t["build"], t0 = clock() - t0, clock()
        I = np.concatenate([index.search(xf[s : s + 65536], k + 1)[1] for s in range(0, n, 65536)])
    elif name == "hnswlib":
        import hnswlib
        t0, index = clock(), hnswlib.Index(space="ip", dim=x.shape[1])
        index.init_index(max_elements=n, M=16, ef_construction=100, random_seed=0)
        index.add_items(xf, np.arange(n), num_threads=THREADS)
        index.set_ef(64)
        t["build"], t0 = clock() - t0, clock()
        I = np.concatenate([index.knn_query(xf[s : s + 65536], k + 1, num_threads=THREADS)[0] for s in range(0, n, 65536)])
    elif name == "usearch":
        from usearch.index import Index
        t0, index = clock(), Index(ndim=x.shape[1], metric="ip", dtype="f16", connectivity=16, expansion_add=128, expansion_search=64)
        index.add(np.arange(n), x, threads=THREADS)
        t["build"], t0 = clock() - t0, clock()
        I = np.concatenate([index.search(x[s : s + 65536], k + 1, threads=THREADS).keys for s in range(0, n, 65536)])
    elif name == "pynndescent":  # the k-NN graph is the self-search; the first call compiles (numba)
        from pynndescent import NNDescent
        t0 = clock()
        index = NNDescent(xf, metric="dot", n_neighbors=max(20, k + 1), random_state=0, n_jobs=THREADS, compressed=True)
        t["build"], t0 = clock() - t0, clock()
        I = index.neighbor_graph[0]
    else:
        raise ValueError(name)
    t["query"] = clock() - t0
    return drop_self(np.asarray(I, dtype=np.int64), k)


CANDIDATES = ["neighbours", "neighbours-graph", "exact-torch", "faiss-flat", "sklearn-brute", "faiss-hnsw", "faiss-ivf", "hnswlib", "usearch", "pynndescent"]
EXACT = {"exact-torch", "faiss-flat", "sklearn-brute"}


def rss(field):  # MB, from /proc/self/status: VmRSS now, VmHWM the peak since the last reset
    return int(open("/proc/self/status").read().split(field + ":")[1].split()[0]) / 1024


def child(name, path, out):
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import torch  # loaded in every datacleaner process: its threads and memory are the same for all
    torch.set_num_threads(THREADS)
    x, t = np.load(path), {"build": 0.0}
    base = rss("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # the peak from here on, not the imports'
        f.write("5")
    idx = run_candidate(name, x, K, t)
    np.save(out, idx)
    print(json.dumps({**t, "base_mb": base, "peak_mb": rss("VmHWM")}))


def truth(x, rows):  # (len(rows), K) exact similarities, itself left out
    import torch
    torch.set_num_threads(THREADS)
    B, out = torch.from_numpy(x.astype(np.float32)), []
    for s in range(0, len(rows), 1024):
        r = rows[s : s + 1024]
        sims = torch.from_numpy(x[r].astype(np.float32)) @ B.T
        sims[torch.arange(len(r)), torch.from_numpy(r)] = -np.inf
        out.append(torch.topk(sims, K, dim=1).values.numpy())
    return np.concatenate(out)


def score(x, rows, true, idx):
    """(recall@10, near-duplicate recall) of found neighbours idx (N, K) against the truth for rows."""
    found = idx[rows]
    sims = np.einsum("nd,nkd->nk", x[rows].astype(np.float32), x[np.maximum(found, 0)].astype(np.float32))
    sims[found < 0] = -np.inf
    recall = (sims >= true[:, -1:] - 1e-4).sum(axis=1).clip(max=K).mean() / K
    dups = true[:, :2] >= 0.8  # a true top-2 neighbour this alike must be among the found, as alike
    hit = (np.sort(sims, axis=1)[:, ::-1][:, :2] >= true[:, :2] - 1e-4) & dups
    return recall, hit.sum() / max(dups.sum(), 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--real", nargs="*", default=[], help="feature .npy files (N, V, D): one more data set, stacked")
    ap.add_argument("--candidates", nargs="*", default=CANDIDATES)
    ap.add_argument("--quick", action="store_true", help="10k synthetic only, without pynndescent (numba compiles for minutes)")
    ap.add_argument("--limit", type=float, default=LIMIT_S / 60, help="minutes per candidate and size [15]")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "nn-bench"))
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(*a.child)
    a.candidates = [c for c in a.candidates if not (a.quick and c == "pynndescent")]
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    sets = [(f"synthetic {n // 1000}k", lambda n=n: synthetic(n)) for n in ([10_000] if a.quick else a.sizes)]
    if a.real and not a.quick:
        from datacleaner.health import compact_features
        sets.append(("real", lambda: np.concatenate([compact_features(np.load(p, mmap_mode="r"))[0] for p in a.real])))
    print("| data | N | candidate | recall@10 | dup recall | build s | query s | total s | peak RSS MB (data loaded) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, make in sets:
        x = make()
        n, path = len(x), work / f"{label.replace(' ', '-')}-{len(x)}.npy"
        np.save(path, x)
        rows = np.arange(n) if n <= EXACT_MAX else np.sort(np.random.default_rng(1).choice(n, 2000, replace=False))
        true = truth(x, rows)
        for name in a.candidates:
            row = f"| {label} | {n:,} | {name} |"
            lib = next((m for m in PIP if name.startswith(m)), None)
            if lib and importlib.util.find_spec(lib) is None or name in EXACT and n > EXACT_MAX:
                print(row, f"skipped: pip install {PIP[lib]}" if lib else "skipped: all pairs, over 15 min", "|" * 6, flush=True)
                continue
            out = work / f"idx-{name}.npy"
            try:
                p = subprocess.run([sys.executable, __file__, "--child", name, str(path), str(out)], capture_output=True,
                                   text=True, timeout=a.limit * 60, env={**os.environ, "OMP_NUM_THREADS": str(THREADS), "NUMBA_NUM_THREADS": str(THREADS)})
            except subprocess.TimeoutExpired:
                p = subprocess.CompletedProcess([], 1, "", f"over {a.limit:g} min: stopped")
            if p.returncode:
                print(row, (p.stderr.strip().splitlines() or ["failed"])[-1][:80], "|" * 6, flush=True)
                continue
            r = json.loads(p.stdout.strip().splitlines()[-1])
            recall, dup = score(x, rows, true, np.load(out))
            print(row, f"{recall:.4f} | {dup:.4f} | {r['build']:.1f} | {r['query']:.1f} | {r['build'] + r['query']:.1f} |"
                  f" {r['peak_mb']:.0f} ({r['base_mb']:.0f}) |", flush=True)


if __name__ == "__main__":
    main()
