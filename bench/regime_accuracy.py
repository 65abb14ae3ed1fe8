"""Per-class accuracy of the regime predictors on a class-balanced set of trained networks, including
conditions they were not tuned on. Labels: the measured band of S(0, T) of each trained net (lazy < 0.05,
rich > 0.3, mixed in between); within each condition the cells are subsampled (fixed seed) to equal
numbers of lazy, mixed and rich (k = the smallest class count), so chance is 1/3 per class.

Conditions (GD by the engine, float64, full batch; cells = τ × δ grids or, for the deep net, scale × ratio):
  kunin     the tuned setup: d=5, h=20, n=50, Kunin's 3-neuron teacher, symmetric init (f₀ ≡ 0), ReLU,
            lr = 0.01/max(κ, 0.1), 8,000 steps, ½·MSE, seeds 0-1 (the design seeds of tests/theory)
  gaussian  the same with a non-symmetric Gaussian init (f₀ ≠ 0: per-neuron norms fluctuate, no pairs)
  tanh      tanh hidden units on a tanh teacher (3 units of gain 6, f*(x) = Σ_j ±tanh(6 w_j·x), inputs on the
            sphere), 4× the rate, 32,000 steps. (A bias-free tanh net is odd, so on the ReLU teacher it can
            only learn the teacher's odd part, which is linear: S ≤ 0.19 there, never rich.)
  iris      a real data set shipped offline (plotly's iris, 150 flowers): petal width from the other three
            measurements, all standardized; symmetric init, ReLU, 4× the rate, 32,000 steps; no cell is
            rich (S ≤ 0.12: a nearly linear target of nearly two-dimensional inputs)
  digits    a real data set shipped offline with scikit-learn (load_digits, 8×8 images, d = 64): 100 images
            drawn per seed, parity of the digit as ±1, inputs centred and scaled to unit norm; symmetric init,
            ReLU, h = 20, 4× the rate, 16,000 steps
  long      the kunin setup run 8× longer (64,000 steps): downstream nets' S keeps growing (delayed rich)
  delayed   where the theory puts the delayed rich regime: downstream inits (δ ∈ {−2, −1, −½, −¼} ≪ τ²,
            τ ∈ {0.01, 0.03, 0.1, 0.3}) with too few neurons for the frozen features to fit (h = 10 on the
            kunin task), each net read at four horizons T = 1,024, 4,096, 16,384, 65,536 steps (a cell is a
            (net, T) pair; the predictors are given T): the same nets cross lazy → mixed → rich as T grows
  deep      three layers (5, 20, 20, 1), ReLU, Gaussian W_l = α·ρ_l·G/√fan_in, ρ = (r, 1, 1/r), lr = 0.01/max(α⁴, 0.1)
Predictors: the configuration-only `predict_regime` (from the nets' mean per-neuron τ² = |a||w| and δ;
two-layer only, so n/a on `deep`), `predict_regime_on_data` at q = 16 phases per decade (full), q = 4,
q = 1 (one relinearization per decade: the first few only), q = 4 on a random half of the samples, and
q = 16 with the Krylov (Lanczos) lazy fit (on `deep` the same Ŝ-band rule through
`relinearized_kernel_distance_layers`). "rich" counts ultra-rich as rich.

    python bench/regime_accuracy.py [--conditions kunin,gaussian,...]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lazyrich import MLP, build, train  # noqa: E402
from lazyrich.observe.base import Data  # noqa: E402
from lazyrich.param.init import kunin_scales  # noqa: E402
from lazyrich.tasks import teacher_student  # noqa: E402
from lazyrich.tasks.synthetic import sphere  # noqa: E402
from lazyrich.theory.regime import LAZY_S, RICH_S, predict_regime, predict_regime_on_data  # noqa: E402
from lazyrich.theory.relinearized import relinearized_kernel_distance_layers  # noqa: E402

CLASSES = ("lazy", "mixed", "rich")
TAUS, DELTAS = np.logspace(-2, 0.5, 6), np.linspace(-1, 1, 5)
PREDICTORS = {"config": None, "full q=16": (16, None, "eigh"), "q=4": (4, None, "eigh"), "q=1": (1, None, "eigh"),
              "q=4, n/2": (4, 0.5, "eigh"), "Krylov q=16": (16, None, "krylov")}


def band(s: float) -> str:
    return "lazy" if s < LAZY_S else ("rich" if s > RICH_S else "mixed")


def label(regime: str) -> str:
    return "rich" if regime == "ultra-rich" else regime


def iris() -> Data:
    import plotly
    path = Path(plotly.__file__).parent / "package_data" / "datasets" / "iris.csv.gz"
    rows = [line.split(",") for line in gzip.open(path, "rt").read().strip().splitlines()[1:]]
    v = torch.tensor([[float(r[i]) for i in range(4)] for r in rows], dtype=torch.float64)
    v = (v - v.mean(0)) / v.std(0)
    return Data(v[:, :3], v[:, 3:], v[:3, :3], v[:3, 3:])


def tanh_teacher(seed: int, d: int = 5, k: int = 3, n: int = 50, gain: float = 6.0) -> Data:
    """f*(x) = Σ_j a_j tanh(gain·w_j·x), w_j ~ Unif(S^{d−1}), a_j = ±1, inputs uniform on the sphere."""
    gen = torch.Generator().manual_seed(seed)
    w = sphere(k, d, gen)
    a = torch.sign(torch.randn(k, generator=gen, dtype=torch.float64))
    x = sphere(n, d, gen)
    y = (torch.tanh(gain * x @ w.T) @ a)[:, None]
    return Data(x, y, x[:3], y[:3])


def digits(seed: int, n: int = 100) -> Data:
    """scikit-learn's digits (ships with the package): n images drawn by `seed`, parity as ±1, inputs centred
    (over all 1,797 images) and scaled to unit norm."""
    from sklearn.datasets import load_digits
    X, label = load_digits(return_X_y=True)
    idx = np.random.default_rng(seed).choice(len(X), n, replace=False)
    X = X[idx] - X.mean(0)
    x = torch.tensor(X / np.linalg.norm(X, axis=1, keepdims=True))
    y = torch.tensor(np.where(label[idx] % 2 == 0, 1.0, -1.0))[:, None]
    return Data(x, y, x[:3], y[:3])


def two_layer_cells(d: int, h: int, seed: int, gaussian: bool, lr_scale: float = 1.0, taus=TAUS, deltas=DELTAS):
    gen = torch.Generator().manual_seed(seed)
    tau, delta = (torch.tensor(v, dtype=torch.float64).reshape(-1) for v in np.meshgrid(taus, deltas, indexing="ij"))
    a_norm, w_norm = kunin_scales(tau, delta)
    E = len(tau)
    if gaussian:  # iid Gaussian directions and signs per cell, norms fluctuating around the cell's (|a|, ||w||)
        w = torch.randn(E, h, d, generator=gen, dtype=torch.float64) / np.sqrt(d)
        a = torch.randn(E, 1, h, generator=gen, dtype=torch.float64)
    else:  # Kunin's symmetric pairs: f₀ ≡ 0
        w0 = torch.randn(h // 2, d, generator=gen, dtype=torch.float64)
        w = (torch.cat([w0, w0]) / w0.norm(dim=1).repeat(2)[:, None]).expand(E, h, d)
        a0 = torch.sign(torch.randn(h // 2, generator=gen, dtype=torch.float64))
        a = torch.cat([a0, -a0]).expand(E, 1, h)
    kappa = torch.sqrt(delta**2 + 4 * tau**4)
    lrs = [lr_scale * 0.01 / max(float(k), 0.1) for k in kappa]
    return [w * w_norm[:, None, None], a * a_norm[:, None, None]], lrs


def deep_cells(d: int, h: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    alphas, ratios = np.logspace(-0.7, 0.5, 6), (0.5, 1.0, 2.0)
    Ws, lrs = [[], [], []], []
    for al in alphas:
        for r in ratios:
            for l, (fo, fi, rho) in enumerate(((h, d, r), (h, h, 1.0), (1, h, 1 / r))):
                Ws[l].append(al * rho * torch.randn(fo, fi, generator=gen, dtype=torch.float64) / np.sqrt(fi))
            lrs.append(0.01 / max(al**4, 0.1))
    return [torch.stack(w) for w in Ws], lrs


CONDITIONS = {  # data, activation, horizon(s), cells(seed)
    "kunin": (lambda s: teacher_student(d=5, k=3, n=50, n_test=10, seed=s), "relu", 8000,
              lambda s: two_layer_cells(5, 20, s + 1, False)),
    "gaussian": (lambda s: teacher_student(d=5, k=3, n=50, n_test=10, seed=s), "relu", 8000,
                 lambda s: two_layer_cells(5, 20, s + 1, True)),
    "tanh": (lambda s: tanh_teacher(s), "tanh", 32_000, lambda s: two_layer_cells(5, 20, s + 1, False, 4.0)),
    "iris": (lambda s: iris(), "relu", 32_000, lambda s: two_layer_cells(3, 20, s + 1, False, 4.0)),
    "digits": (lambda s: digits(s), "relu", 16_000, lambda s: two_layer_cells(64, 20, s + 1, False, 4.0)),
    "long": (lambda s: teacher_student(d=5, k=3, n=50, n_test=10, seed=s), "relu", 64_000,
             lambda s: two_layer_cells(5, 20, s + 1, False)),
    "delayed": (lambda s: teacher_student(d=5, k=3, n=50, n_test=10, seed=s), "relu", (1024, 4096, 16_384, 65_536),
                lambda s: two_layer_cells(5, 10, s + 1, False, 1.0, (0.01, 0.03, 0.1, 0.3), (-2.0, -1.0, -0.5, -0.25))),
    "deep": (lambda s: teacher_student(d=5, k=3, n=50, n_test=10, seed=s), "relu", 8000, lambda s: deep_cells(5, 20, s + 1)),
}


def run_condition(name: str, seeds=(0, 1)) -> list[dict]:
    make_data, act, horizons, make_cells = CONDITIONS[name]
    horizons = horizons if isinstance(horizons, tuple) else (horizons,)
    out = []
    for seed in seeds:
        data = make_data(seed)
        weights, lrs = make_cells(seed)
        widths = (weights[0].shape[2],) + tuple(w.shape[1] for w in weights)
        ens = build(MLP(widths, act), [{"lr": lr} for lr in lrs], scheme="sp", loss_scale=0.5)
        ens = ens.with_params({f"W{l + 1}": w for l, w in enumerate(weights)})
        for p in ens.lr:
            ens.lr[p] = ens.base_lr.clone()
            ens.multipliers[p] = torch.ones(len(lrs), dtype=torch.float64)
        t0 = time.perf_counter()
        run = train(ens, data, horizons[-1], record=[0, *horizons], observers=("loss", "kernel_distance"), kernel="fused")
        t_train = (time.perf_counter() - t0) / len(lrs)  # per net, trained as one fused ensemble (with its observers)
        y_scale = float(data.y.pow(2).sum(1).mean().sqrt())
        x_scale = float(data.x.pow(2).sum(1).mean().sqrt())
        for steps in horizons:
            S = run.final("kernel_distance", step=steps)["kernel_distance"].sort_index().to_numpy()
            for i, lr in enumerate(lrs):
                if run.diverged_step[i] >= 0:
                    continue
                cell = {"condition": name, "seed": seed, "member": i, "T": steps, "S": float(S[i]), "measured": band(float(S[i])),
                        "t_train": t_train * steps / horizons[-1]}
                Wi = [w[i] for w in weights]
                for key, spec in PREDICTORS.items():
                    t0 = time.perf_counter()
                    if spec is None and len(Wi) > 2:  # no configuration-only predictor beyond two layers
                        cell[key] = "n/a"
                    elif spec is None:
                        a_norm, w_norm = Wi[1].norm(dim=0), Wi[0].norm(dim=1)
                        tau = float((a_norm * w_norm).mean().sqrt())
                        delta = float((a_norm**2 - w_norm**2).mean())
                        cell[key] = label(predict_regime((widths[0], widths[1], 1), tau, delta, y_scale, x_scale,
                                                         activation=act).regime)
                    else:  # deep nets: the same Ŝ-band rule through the any-depth flow
                        q, frac, solver = spec
                        ns = None if frac is None else int(frac * data.x.shape[0])
                        if len(Wi) == 2:
                            p = predict_regime_on_data(data.x, data.y, Wi[0], Wi[1], steps, lr, lr, act, 0.5, q, ns, 0, solver)
                            cell[key], cell[f"S_{key}"] = label(p.regime), p.kernel_distance
                        else:
                            s_hat = relinearized_kernel_distance_layers(data.x, data.y, Wi, [lr] * len(Wi), steps, act,
                                                                        0.5, q, ns, 0, solver)
                            cell[key], cell[f"S_{key}"] = band(s_hat), s_hat
                    cell[f"t_{key}"] = time.perf_counter() - t0
                out.append(cell)
    return out


def balanced(cells: list[dict], seed: int = 0) -> list[dict]:
    """Equal numbers of lazy, mixed and rich cells (k = the smallest count of the classes the condition
    has at all: tanh and iris have no rich cell), a seeded choice."""
    rng = np.random.default_rng(seed)
    by = {c: [x for x in cells if x["measured"] == c] for c in CLASSES}
    k = min(len(v) for v in by.values() if v)
    return [by[c][j] for c in CLASSES if by[c] for j in sorted(rng.choice(len(by[c]), k, replace=False))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--cache", default="", help="folder keeping each condition's cells as JSON (reused when present)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"# torch {torch.__version__}, 1 thread; start: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    pool, chosen = {}, []
    for name in args.conditions.split(","):
        t0 = time.perf_counter()
        path = Path(args.cache) / f"regime_accuracy_{name}.json" if args.cache else None
        if path is not None and path.exists():
            pool[name] = json.loads(path.read_text())
        else:
            pool[name] = run_condition(name)
            if path is not None:
                path.write_text(json.dumps(pool[name]))
        chosen += balanced(pool[name])
        counts = {c: sum(x["measured"] == c for x in pool[name]) for c in CLASSES}
        print(f"# {name}: {len(pool[name])} cells, measured {counts}, {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"# end: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    keys = list(PREDICTORS)
    print("\n| condition | k per class | " + " | ".join(f"{p}: lazy / mixed / rich" for p in keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    groups = {**{name: [name] for name in pool}, "untuned (all but kunin)": [n for n in pool if n != "kunin"], "all": list(pool)}
    for name, members in groups.items():
        sel = [c for c in chosen if c["condition"] in members]
        k = max(sum(c["measured"] == cl for c in sel) for cl in CLASSES)
        cols = []
        for p in keys:
            if all(c[p] == "n/a" for c in sel):
                cols.append("n/a")
                continue
            acc = [sum(c[p] == cl for c in sel if c["measured"] == cl and c[p] != "n/a") for cl in CLASSES]
            tot = [sum(1 for c in sel if c["measured"] == cl and c[p] != "n/a") for cl in CLASSES]
            cols.append(" / ".join(f"{a}/{t}" if t else "–" for a, t in zip(acc, tot)))
        print(f"| {name} | {k} | " + " | ".join(cols) + " |")
    for p in keys:  # balanced accuracy: mean over the classes of the per-class recall
        sel = [c for c in chosen if c[p] != "n/a"]
        rec = [np.mean([c[p] == cl for c in sel if c["measured"] == cl]) for cl in CLASSES]
        print(f"# {p}: per-class recall {' / '.join(f'{r:.2f}' for r in rec)}, balanced accuracy {np.mean(rec):.2f}")
    for p in keys:
        sel = [c for c in chosen if c[p] != "n/a"]
        print(f"\nconfusion, {p} (rows measured, columns predicted lazy / mixed / rich; {len(sel)} cells):")
        for m in CLASSES:
            print(f"  {m:5s}: " + " ".join(f"{sum(c[p] == q for c in sel if c['measured'] == m):4d}" for q in CLASSES))
        times = [c[f't_{p}'] for c in sel]
        print(f"  mean prediction time {np.mean(times) * 1e3:.1f} ms per net; training the same nets (fused ensemble, "
              f"observers included) {np.mean([c['t_train'] for c in sel]) * 1e3:.1f} ms per net")
        if p != "config":  # how far from a band edge the misses of all trained cells (balanced or not) lie
            miss = [c for name in pool for c in pool[name] if c[p] not in ("n/a", c["measured"])]
            edge = [min(abs(c["S"] - LAZY_S), abs(c["S"] - RICH_S)) for c in miss]
            print(f"  misses over all {sum(len(v) for v in pool.values())} trained cells: {len(miss)}, "
                  f"{sum(e <= 0.03 for e in edge)} of them with S within 0.03 of a band edge (largest distance "
                  f"{max(edge, default=0):.3f})")
    if "delayed" in pool:  # the same nets read at growing horizons: the crossing, and who sees it
        cells = pool["delayed"]
        print("\ndelayed: measured lazy / mixed / rich and correct (config | full q=16 | q=1) per horizon, all cells:")
        for T in sorted({c["T"] for c in cells}):
            at = [c for c in cells if c["T"] == T]
            counts = [sum(c["measured"] == cl for c in at) for cl in CLASSES]
            right = [sum(c[p] == c["measured"] for c in at) for p in ("config", "full q=16", "q=1")]
            print(f"  T = {T}: {' / '.join(map(str, counts))}; correct {' | '.join(f'{r}/{len(at)}' for r in right)}")
        horizons = sorted({c["T"] for c in cells})
        nets = {(c["seed"], c["member"]) for c in cells}
        first = {(c["seed"], c["member"]): c["measured"] for c in cells if c["T"] == horizons[0]}
        last = {(c["seed"], c["member"]): c["measured"] for c in cells if c["T"] == horizons[-1]}
        cross = [k for k in nets if first[k] == "lazy" and last[k] == "rich"]
        print(f"  nets lazy at T = {horizons[0]} and rich at T = {horizons[-1]}: {len(cross)} of {len(nets)}")


if __name__ == "__main__":
    main()
