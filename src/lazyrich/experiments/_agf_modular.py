"""AGF on modular addition (Kunin et al. 2025, arXiv 2506.06489, modular-addition section): a two-layer
quadratic network learns the Fourier features of the target in decreasing order of coefficient magnitude.

Task: a template x ∈ R^p with mean zero, x[n] = Σ_k c_k cos(2πkn/p + φ_k); every pair (a, b) ∈ Z_p² (full
batch, p² samples) maps to the shifted template y(a, b)[m] = x[(m − a − b) mod p]. Inputs are the
concatenated one-hot vectors [e_a; e_b], so lazyrich's `MLP((2p, h, p), "quadratic")` is exactly
f(a, b) = Σ_i w_i (u_i[a] + v_i[b])² with W1 = [U V], W2 = [w_1 … w_h]. Loss ½ mean ||f − y||², GD from
W ~ N(0, α²) entrywise. (The paper's input encoding was not verified from its text; with a template input
(ρ(a)x, ρ(b)x) instead of one-hot vectors the function class is the same, the metric of the flow is not.)

Theory. A neuron θ_i = (u_i, v_i, w_i) enters f 3-homogeneously (κ = 3). Its utility on the residual y is
U = (2/p²) Σ_{a,b} u[a] v[b] ⟨w, y(a, b)⟩ (the square terms vanish because x has mean zero): a sum over
frequencies k of c_k times a trilinear form in the ±k Fourier blocks of u, v, w. Hence the dormant flow
keeps frequency blocks independent, the utility is maximised by a single-frequency neuron, and that maximum
is ∝ c_k: AGF activates the frequency of largest |c_k| first. Unlike κ = 2 the plateau lasts ∝ 1/‖θ(0)‖
(not ln) and the direction moves only O(1) while the norm is small, so which neuron wins a frequency, and
when, depends on the draw of the init (a lottery); AGF run from the same init predicts it. One neuron fits
only ~11 % of a frequency's loss (its square terms and the (a − b) part of u[a]v[b] are spurious; measured
with L-BFGS at p = 11: 1, 2, 3, 4 neurons leave 89, 51, 21, 2.5 %), so each frequency's drop is a cluster
of ~5 neuron activations; the frequency-level staircase has one drop per frequency.

`decoupled_agf` runs `theory.agf(..., "quadratic")` per frequency on the neurons' ±k blocks (exact for
the dormant phase) and couples the runs only by "a neuron serves one frequency". The full-network generic
AGF also runs (`theory.agf` on the one-hot net) but its L-BFGS cost minimisation over dozens of active
33-dimensional neurons takes minutes per seed.

Measurements: first-layer DFT power per frequency pair ±k, P_k = Σ_i |û_i[±k]|² + |v̂_i[±k]|² (learned
order: first time P_k reaches half its final value); the loss carried by each output frequency L_k
(Parseval over the output index, Σ_k L_k = loss); the onset of frequency k's drop: first time L_k has
fallen by half of AGF's one-neuron drop.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from ..dynamics import train
from ..ensemble import predict
from ..observe.base import Data, Observation, State
from ..theory import agf
from .base import Context, k_of_n
from .single_neuron import hand_set_ensemble, series

SOURCE = ("Kunin et al. 2025 AGF (arXiv 2506.06489), modular addition with a quadratic network; "
          "shared/theory/exact_solutions.md §6, experiments.md §7")


def template(p: int, coefs: Sequence[float], seed: int) -> np.ndarray:
    """x[n] = Σ_{k=1}^{K} coefs[k−1] cos(2πkn/p + φ_k), φ_k uniform from `seed` (K ≤ (p−1)/2; mean zero)."""
    coefs = np.asarray(coefs, float)
    assert 2 * len(coefs) < p, "at most (p − 1)/2 frequencies"
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, len(coefs))
    n = np.arange(p)
    return sum(c * np.cos(2 * np.pi * (k + 1) * n / p + ph) for k, (c, ph) in enumerate(zip(coefs, phases)))


def coefficients(x: np.ndarray) -> np.ndarray:
    """Cosine amplitudes |c_k| = 2|x̂[k]|/p, k = 1 … (p−1)/2, of a real template."""
    p = len(x)
    return 2 * np.abs(np.fft.fft(x))[1: (p - 1) // 2 + 1] / p


def inputs(p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X [p², 2p] one-hot [e_a; e_b], a, b) over all pairs, a-major."""
    a, b = np.divmod(np.arange(p * p), p)
    X = np.zeros((p * p, 2 * p))
    X[np.arange(p * p), a] = 1.0
    X[np.arange(p * p), p + b] = 1.0
    return X, a, b


def targets(x: np.ndarray) -> np.ndarray:
    """Y [p², p]: Y[(a, b), m] = x[(m − a − b) mod p]."""
    p = len(x)
    _, a, b = inputs(p)
    m = np.arange(p)
    return x[(m[None, :] - a[:, None] - b[:, None]) % p]


def fourier_power(W1: np.ndarray | torch.Tensor, p: int) -> np.ndarray:
    """First-layer DFT power per frequency pair ±k, k = 1 … (p−1)/2: W1 [..., h, 2p] → [..., K]."""
    W = torch.as_tensor(W1)
    P = torch.fft.fft(W[..., :p], dim=-1).abs() ** 2 + torch.fft.fft(W[..., p:], dim=-1).abs() ** 2
    P = P.sum(-2)  # over neurons
    K = (p - 1) // 2
    return (P[..., 1: K + 1] + P[..., p - K:].flip(-1)).cpu().numpy()


def loss_by_frequency(f: torch.Tensor, y: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """Loss split over output frequencies: [..., n, p] outputs and targets → [..., K + 1] (column 0: the
    mean, column k: the pair ±k), summing to scale·mean_n ||f − y||² (Parseval over the output index)."""
    p = f.shape[-1]
    R = torch.fft.fft(f - y, dim=-1).abs() ** 2 / p  # Σ_m r_m² = (1/p) Σ_k |r̂_k|²
    K = (p - 1) // 2
    per = torch.cat([R[..., :1], R[..., 1: K + 1] + R[..., p - K:].flip(-1)], dim=-1)
    return scale * per.mean(-2)


@dataclass
class FrequencyObserver:
    """The observables of this reproduction: `fourier_power` [E, K] (DFT power of W1 per frequency pair)
    and `loss_by_frequency` [E, K + 1] (the loss carried by each output frequency, column 0 the mean)."""

    p: int
    name: str = "modular_frequencies"

    def __call__(self, s: State) -> Iterator[Observation]:
        yield Observation("fourier_power", "", torch.as_tensor(fourier_power(s.params["W1"], self.p)))
        f = predict(s.ens, s.params, s.data.x)
        yield Observation("loss_by_frequency", "", loss_by_frequency(f, s.data.y, s.ens.loss_scale))


def half_times(t: np.ndarray, P: np.ndarray) -> np.ndarray:
    """First time each column of P [T, K] reaches half its final value (NaN if never)."""
    out = np.full(P.shape[1], np.nan)
    for k in range(P.shape[1]):
        hit = np.nonzero(P[:, k] >= 0.5 * P[-1, k])[0]
        out[k] = t[hit[0]] if len(hit) else np.nan
    return out


def inversions(times: np.ndarray, coefs: np.ndarray) -> int:
    """Pairs of frequencies learned against the order of decreasing |c_k| (discordant pairs; 0 = Spearman 1).
    A frequency never learned (NaN) counts as inverted against every other."""
    K, bad = len(coefs), 0
    for i in range(K):
        for j in range(K):
            if abs(coefs[i]) > abs(coefs[j]):
                ti, tj = times[i], times[j]
                bad += int(not (np.isfinite(ti) and np.isfinite(tj) and ti < tj))
    return bad


def spearman(times: np.ndarray, coefs: np.ndarray) -> float:
    """Spearman rank correlation between learning order and the order of decreasing |c_k|."""
    r1 = np.argsort(np.argsort(np.nan_to_num(times, nan=np.inf)))
    r2 = np.argsort(np.argsort(-np.abs(coefs)))
    K = len(coefs)
    return float(1 - 6 * ((r1 - r2) ** 2).sum() / (K * (K * K - 1)))


def inits(p: int, h: int, alpha: float, seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """W1 [E, h, 2p], W2 [E, p, h] with i.i.d. N(0, α²) entries, one draw per seed."""
    W1 = np.stack([alpha * np.random.default_rng(1000 + s).normal(size=(h, 2 * p)) for s in seeds])
    W2 = np.stack([alpha * np.random.default_rng(2000 + s).normal(size=(p, h)) for s in seeds])
    return W1, W2


def gd_run(p: int, h: int, templates: list[np.ndarray], W1: np.ndarray, W2: np.ndarray, lr: float, steps: int,
           every: int, device: str) -> dict:
    """GD of the quadratic net, one member per (template, init) pair, per-member targets."""
    X, _, _ = inputs(p)
    Y = np.stack([targets(x) for x in templates])
    ens = hand_set_ensemble((2 * p, h, p), {"W1": W1, "W2": W2}, lr, device, activation="quadratic",
                            members=pd.DataFrame({"member_id": range(len(W1))}))
    data = Data(torch.tensor(X, device=device), torch.tensor(Y, device=device))
    run = train(ens, data, steps, record=list(range(0, steps + 1, every)), observers=("loss", FrequencyObserver(p)),
                kernel="fused")
    r = run.records()
    t = np.sort(r.time.unique())
    E = len(W1)
    return dict(t=t, loss=np.stack([series(r, "loss", e)[:, 0] for e in range(E)]),
                power=np.stack([series(r, "fourier_power", e) for e in range(E)]),
                loss_k=np.stack([series(r, "loss_by_frequency", e) for e in range(E)]),
                W1=run.ens.params["W1"].cpu().numpy(), W2=run.ens.params["W2"].cpu().numpy())


def frequency_basis(p: int, k: int) -> np.ndarray:
    """Orthonormal basis [p, 2] of the ±k Fourier subspace: √(2/p)(cos, sin)(2πk·/p)."""
    n = np.arange(p)
    return np.sqrt(2 / p) * np.stack([np.cos(2 * np.pi * k * n / p), np.sin(2 * np.pi * k * n / p)], 1)


def frequency_problem(p: int, x: np.ndarray, W1: np.ndarray, W2: np.ndarray, k: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The ±k part of the task in orthonormal coordinates: inputs [n, 4] (basis rows of a and of b),
    targets [n, 2], first layer [h, 4] and readout [2, h] of the neurons' ±k blocks. A network of pure
    frequency-k neurons on it has the same loss (the ±k part) and the same gradient flow as in the
    one-hot parametrisation, because the coordinates are orthonormal."""
    B = frequency_basis(p, k)
    _, a, b = inputs(p)
    Xk = np.hstack([B[a], B[b]])
    return Xk, targets(x) @ B, np.hstack([W1[:, :p] @ B, W1[:, p:] @ B]), B.T @ W2


def decoupled_agf(p: int, x: np.ndarray, W1: np.ndarray, W2: np.ndarray, freqs: Sequence[int], t_max: float,
                  fitted: float = 0.05, fit_maxiter: int = 2000, step_tol: float = 0.01) -> dict:
    """AGF with the frequency decoupling of this model: for each frequency k, AGF (`theory.agf`, κ = 3) on
    the ±k blocks of all neurons (`frequency_problem`), until the ±k loss is below `fitted` × its initial
    value. The dormant phase is exact: the utility is a sum over frequencies, the dormant flow keeps a pure
    block pure, and learning k' changes only the output-frequency-k' residual. The cost minimisation is
    restricted to pure frequency-k neurons (an approximation). What couples the runs is that a neuron
    serves one frequency: a neuron activated at one frequency is removed from the other runs, which are
    redone from the init until every neuron activates at most once (the earliest activation wins).

    Returns per frequency (in `freqs` order) the first activation time `t`, its neuron `winner`, the norm
    of its ±k block at activation `norm`, the one-neuron loss drop `drop` and the initial loss `initial`,
    and all activations `events` [(time, neuron, frequency, ±k loss after)] in time order."""
    excluded: dict[int, set[int]] = {k: set() for k in freqs}
    cache: dict[tuple[int, frozenset], tuple] = {}

    def run_k(k: int) -> tuple:
        key = (k, frozenset(excluded[k]))
        if key not in cache:
            keep = [i for i in range(W1.shape[0]) if i not in excluded[k]]
            Xk, Yk, B1, B2 = frequency_problem(p, x, W1[keep], W2[:, keep], k)
            l0 = 0.5 * float((Yk * Yk).sum(1).mean())
            pred = agf(Xk, Yk, B1, B2, "quadratic", t_max=t_max, loss_tol=fitted * l0, fit_gtol=1e-10,
                       fit_maxiter=fit_maxiter, step_tol=step_tol)
            cache[key] = ([float(t) for t in pred.jump_times], [keep[i] for i in pred.order], list(pred.losses),
                          list(pred.jump_norms))
        return cache[key]

    with threadpool_limits(1):
        for _ in range(4 * W1.shape[0]):
            runs = {k: run_k(k) for k in freqs}
            events = sorted((t, i, k, runs[k][2][j + 1]) for k in freqs for j, (t, i) in enumerate(zip(*runs[k][:2])))
            claimed: dict[int, int] = {}
            conflict = None
            for t, i, k, _ in events:
                if claimed.get(i, k) != k:
                    conflict = (i, k)
                    break
                claimed[i] = k
            if conflict is None:
                break
            excluded[conflict[1]].add(conflict[0])
    first = [runs[k] for k in freqs]
    return dict(t=np.array([r[0][0] if r[0] else np.nan for r in first]),
                winner=np.array([r[1][0] if r[1] else -1 for r in first]),
                drop=np.array([r[2][0] - r[2][1] if r[0] else np.nan for r in first]),
                norm=np.array([r[3][0] if r[0] else np.nan for r in first]),
                initial=np.array([r[2][0] for r in first]), events=events)


def onset_times(t: np.ndarray, loss_k: np.ndarray, drops: np.ndarray, freqs: Sequence[int]) -> np.ndarray:
    """GD time at which the loss of frequency k has fallen by half the predicted one-neuron drop."""
    out = []
    for k, d in zip(freqs, drops):
        lk = loss_k[:, k]
        hit = np.nonzero(lk <= lk[0] - 0.5 * d)[0] if np.isfinite(d) else []
        out.append(t[hit[0]] if len(hit) else np.nan)
    return np.array(out)


def agf_staircase(res: dict, freqs: Sequence[int], times: np.ndarray) -> np.ndarray:
    """Per-frequency loss [T, len(freqs)] of the decoupled AGF staircase on a time grid."""
    out = np.tile(res["initial"], (len(times), 1))
    for t, _, k, after in res["events"]:
        out[times >= t, list(freqs).index(k)] = after
    return out



def frequency_drops(loss_k: np.ndarray, onsets: np.ndarray, freqs: Sequence[int], done: float = 0.1,
                    gap: float = 0.1) -> int:
    """Number of distinct frequency drops of one run: frequency k counts when its loss share ends at
    ≤ `done` × its initial value and its onset is ≥ (1 + gap) × the previous frequency's onset (a drop
    that starts together with another one is not distinct)."""
    count, prev = 0, None
    for j in np.argsort(np.nan_to_num(onsets, nan=np.inf)):
        k, on = freqs[j], onsets[j]
        completed = loss_k[-1, k] <= done * loss_k[0, k]
        distinct = np.isfinite(on) and (prev is None or on >= (1 + gap) * prev)
        count += int(completed and distinct)
        prev = on
    return count


def run_modular(ctx: Context, cfg: dict) -> None:
    """GD ensemble (main template and the equal-coefficient control, same inits), decoupled AGF per seed,
    claims, control, notes and the figure."""
    p, h, E = cfg["p"], cfg["h"], cfg["seeds"]
    coefs, ctrl = np.asarray(cfg["coefs"], float), np.asarray(cfg["control_coefs"], float)
    freqs = [int(k) + 1 for k in np.nonzero(coefs)[0]]
    c = coefs[np.asarray(freqs) - 1]
    x, xc = template(p, coefs, cfg["phase_seed"]), template(p, ctrl, cfg["phase_seed"])
    W1, W2 = inits(p, h, cfg["alpha"], range(E))
    g = gd_run(p, h, [x] * E + [xc] * E, np.concatenate([W1, W1]), np.concatenate([W2, W2]), cfg["lr"], cfg["steps"],
               cfg["every"], ctx.device)
    t = g["t"]
    fi = np.asarray(freqs) - 1
    half = np.stack([half_times(t, g["power"][e])[fi] for e in range(2 * E)])  # GD learning times per frequency
    inv = [inversions(half[e], c) for e in range(E)]
    rho = [spearman(half[e], c) for e in range(E)]
    inv_ctrl = [inversions(half[E + e], c) for e in range(E)]  # against the main template's ranking
    ag = [decoupled_agf(p, x, W1[e], W2[e], freqs, t[-1], fit_maxiter=cfg["fit_maxiter"],
                        step_tol=cfg.get("step_tol", 0.01)) for e in range(E)]
    onset = np.stack([onset_times(t, g["loss_k"][e], ag[e]["drop"], freqs) for e in range(E)])
    T = np.stack([a["t"] for a in ag])
    ratio = onset / T
    agf_inv = [inversions(T[e], c) for e in range(E)]
    drops = [frequency_drops(g["loss_k"][e], onset[e], freqs) for e in range(E)]
    lead = int(np.argmax(c))
    K = len(freqs)
    order_txt = lambda e: "→".join(str(freqs[j]) for j in np.argsort(np.nan_to_num(half[e], nan=np.inf)))  # noqa: E731
    want = "→".join(str(freqs[j]) for j in np.argsort(-c))
    ctx.k_of_n("modadd-order", f"Modular addition (p = {p}, quadratic net, h = {h}, {E} seeds): frequencies are learned in "
               f"decreasing |c_k| ({want}; learned = first time the first-layer DFT power of k reaches half its final "
               f"value) with 0 discordant pairs, in most seeds: share of seeds > 1/2 (Clopper–Pearson; min Spearman "
               f"{min(rho):.2f})", SOURCE, "paper", [i == 0 for i in inv], 0.5)
    ctx.k_of_n("modadd-drops", "Modular addition: one loss drop per frequency: the number of distinct frequency drops (loss "
               "share of k ends ≤ 10 % of its initial value and its drop starts ≥ 10 % later than the previous frequency's; "
               f"thresholds inferred) = K = {K}, in most seeds: share > 1/2 (Clopper–Pearson)", SOURCE, "inferred",
               [d == K for d in drops], 0.5)
    ctx.k_of_n("modadd-agf-order", "Modular addition: AGF from the same init (`decoupled_agf`: theory.agf with κ = 3 per "
               "frequency block) activates the frequencies in decreasing |c_k| (0 discordant pairs), in most seeds: share "
               "> 1/2 (Clopper–Pearson)", SOURCE, "derived", [i == 0 for i in agf_inv], 0.5)
    ctx.k_of_n("modadd-agf-first-drop", f"Modular addition: onset of the first frequency drop (k = {freqs[lead]}, the largest "
               "|c_k|; GD: first time its loss share has fallen by half of AGF's one-neuron drop) / AGF's first activation "
               "time at k: |ratio − 1| ≤ 0.20 in most seeds: share > 1/2 (Clopper–Pearson; issue 5's bar for nonlinear nets; "
               f"here the decoupled AGF has no approximation beyond AGF's own; max over seeds "
               f"{float(np.max(np.abs(ratio[:, lead] - 1))):.3f})", SOURCE, "inferred",
               np.abs(ratio[:, lead] - 1) <= 0.20, 0.5)
    worst = float(np.nanmax(np.abs(ratio - 1))) if np.all(np.isfinite(ratio)) else float("nan")
    if cfg.get("claim_all_drops"):
        # kept as the worst case over seeds and frequencies (exact): a bound on AGF's accuracy, measured failing
        ctx.claim("modadd-agf-drop-times", "Modular addition: onset of every frequency drop / AGF's first activation at that "
                  "frequency: max over seeds and frequencies |ratio − 1| ≤ 0.20 (issue 5's bar; a worst-case bound, "
                  f"not a statistic: seeds with every frequency within 20 %: "
                  f"{int(np.all(np.abs(ratio - 1) <= 0.20, axis=1).sum())} of {E})", SOURCE, "inferred", worst, 0.0, 0.20)
    ctx.control("control-equal-coefficients", "equal coefficients (|c_k| = "
                f"{', '.join(f'{v:g}' for v in ctrl[fi])} at k = {', '.join(map(str, freqs))}, same phases and inits): no "
                "order is predicted, the order claim against the main template's ranking must fail (the lottery decides)",
                SOURCE, [k_of_n("equal-coefficients-modadd-order", f"order {want} (discordant pairs = 0) in most seeds: share "
                                "> 1/2 (Clopper–Pearson)", SOURCE, "paper", [i == 0 for i in inv_ctrl], 0.5)])
    agf_ctrl = None
    if cfg.get("agf_control"):
        agf_ctrl = [decoupled_agf(p, xc, W1[e], W2[e], freqs, t[-1], fit_maxiter=cfg["fit_maxiter"],
                        step_tol=cfg.get("step_tol", 0.01)) for e in range(E)]
        onset_c = np.stack([onset_times(t, g["loss_k"][E + e], a["drop"], freqs) for e, a in enumerate(agf_ctrl)])
        T_c = np.stack([a["t"] for a in agf_ctrl])
        lottery = [inversions(onset_c[e], 1 / T_c[e]) for e in range(E)]
        ctx.k_of_n("modadd-control-agf-lottery", "Modular addition, equal coefficients: AGF from the same init predicts the "
                   "(init-dependent) order in which GD's frequency drops start: 0 discordant pairs between AGF's first "
                   f"activations and GD's drop onsets in most seeds: share > 1/2 (Clopper–Pearson; summed over seeds "
                   f"{sum(lottery)})", SOURCE, "derived", [v == 0 for v in lottery], 0.5)
        ctx.note("Modular addition, control (equal |c|): drop onsets GD / AGF per seed: " + "; ".join(
            f"{e}: " + "/".join(f"{on:.0f}:{a:.0f}" for on, a in zip(onset_c[e], T_c[e])) for e in range(E))
            + f"; max |ratio − 1| = {float(np.nanmax(np.abs(onset_c / T_c - 1))):.3f}.")
    ctx.note("Modular addition, learned order per seed (GD): " + "; ".join(f"{e}: {order_txt(e)}" for e in range(E))
             + "; control (equal |c|): " + "; ".join(f"{e}: {order_txt(E + e)}" for e in range(E)) + ".")
    ctx.note("Modular addition, frequency-drop onsets GD / AGF per seed (frequencies " + ", ".join(map(str, freqs)) + "): "
             + "; ".join(f"{e}: " + "/".join(f"{on:.0f}:{a:.0f}" for on, a in zip(onset[e], T[e])) for e in range(E))
             + f". Max |ratio − 1| over all frequencies: {worst:.3f}"
             + (" (the claim fails at both sizes and at every --sensitivity knob value, docs/reproductions.md: the first "
                "activation of the last frequency can be transient, the "
                "neuron is taken over by another frequency, e.g. seed 0 here, whose k = 4 power rises at AGF's time and "
                "falls back, or it is mispredicted because AGF recruits a different cluster at an earlier frequency)")
             + f"; first drop (k = {freqs[lead]}): {float(np.max(np.abs(ratio[:, lead] - 1))):.3f}.")
    _figure(ctx, g, ag, freqs, c, half, onset, T, E, agf_ctrl)


def _figure(ctx: Context, g: dict, ag: list[dict], freqs: list[int], c: np.ndarray, half: np.ndarray, onset: np.ndarray,
            T: np.ndarray, E: int, agf_ctrl: list[dict] | None) -> None:
    t = g["t"]
    colors = plt.cm.plasma(np.linspace(0.05, 0.8, len(freqs)))
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    ax = axes[0]
    ax.semilogy(t, g["loss"][0], "k-", lw=1.3, label="GD (seed 0)")
    stair = agf_staircase(ag[0], freqs, t).sum(1)
    ax.semilogy(t, stair, "r--", lw=1, label="AGF staircase (decoupled)")
    for col, tk, k in zip(colors, T[0], freqs):
        ax.axvline(tk, color=col, lw=0.8, ls=":", label=f"AGF onset k = {k}")
    ax.set_xlabel("t = kη")
    ax.set_ylabel("loss")
    ax.set_title("loss staircase, AGF overlaid")
    ax.legend(fontsize=6)
    ax = axes[1]
    P = g["power"][0][:, np.asarray(freqs) - 1]
    for j, (col, k) in enumerate(zip(colors, freqs)):
        ax.plot(t, P[:, j] / P[-1, j], color=col, lw=1.2, label=f"k = {k}, |c| = {c[j]:g}")
        ax.axvline(T[0, j], color=col, lw=0.8, ls=":")
    ax.set_xlabel("t = kη")
    ax.set_ylabel("first-layer DFT power / final")
    ax.set_title("Fourier features (seed 0); dotted: AGF onsets")
    ax.legend(fontsize=7)
    ax = axes[2]
    lim = [0.8 * np.nanmin(T), 1.25 * np.nanmax(T)]
    ax.fill_between(lim, [0.8 * lim[0], 0.8 * lim[1]], [1.2 * lim[0], 1.2 * lim[1]], color="0.9", label="±20 %")
    ax.plot(lim, lim, "k-", lw=0.8)
    for j, (col, k) in enumerate(zip(colors, freqs)):
        ax.plot(T[:, j], onset[:, j], "o", color=col, ms=4, label=f"k = {k}")
    ax.set_xlabel("AGF onset (first activation)")
    ax.set_ylabel("GD drop onset")
    ax.set_title(f"drop times, {E} seeds")
    ax.legend(fontsize=7)
    ax = axes[3]
    P = g["power"][E][:, np.asarray(freqs) - 1]
    for j, (col, k) in enumerate(zip(colors, freqs)):
        ax.plot(t, P[:, j] / P[-1, j], color=col, lw=1.2, label=f"k = {k}")
        if agf_ctrl is not None:
            ax.axvline(agf_ctrl[0]["t"][j], color=col, lw=0.8, ls=":")
    ax.set_xlabel("t = kη")
    ax.set_title("control: equal |c_k| (seed 0)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    ctx.figure(fig, "modular", "AGF on modular addition with a quadratic network. (1) GD loss of seed 0 (black) and the AGF "
               "staircase from the same init (red dashed; sum over frequencies of the decoupled per-frequency AGF), dotted: "
               "AGF's first activation per frequency. (2) first-layer DFT power per frequency, normalised by its final value: "
               "frequencies appear in decreasing |c_k|. (3) GD drop onsets vs AGF's predicted first activations, all seeds "
               "(grey: ±20 %). (4) the control with equal |c_k|: the order is set by the init.")
