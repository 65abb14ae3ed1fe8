"""word-embeddings-stepwise: quadratic word embedding models learn one eigenmode of M* at a time
(Karkada et al. 2025, arXiv 2502.09863), on the co-occurrence statistics of Python's documentation.

An ensemble of QWEMs (seeds × embedding sizes) is trained by full-batch GD on the contrastive quadratic
loss with the constant-weighting hyperparameters (lazyrich.theory.word_embeddings); members of size
d < d_max are the first d columns of a [V, d_max] tensor whose other columns are zero and stay exactly
zero (their gradient (WWᵀ − M*)W[:, j] vanishes). The loss is not a network on (x, y) data, so it does
not go through `lazyrich.dynamics.train`: `train_qwem` below is a small batched loop that computes the
gradient in closed form and applies the package's optimizer step (`dynamics.optim.step`, GD by default).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import require
from .base import Context, reproduction

SOURCE = "Karkada, Simon, Bahri & DeWeese 2025 (arXiv 2502.09863): QWEM loss, constant-weighting theorem, sigmoidal rank steps"


def contrastive_loss(W: Tensor, P: Tensor, psi_plus: Tensor, psi_minus: Tensor) -> Tensor:
    """The QWEM loss [E] of embeddings W [E, V, d] as the paper writes it, a sum over word pairs:
    Σ_ij ψ⁺P_ij(β²/8 − β/2) + ψ⁻P_iP_j(β²/8 + β/2), β = WWᵀ (constants log 2 dropped). O(V²) per member:
    the reference the closed-form gradient of `qwem_gradient` is tested against."""
    beta = W @ W.transpose(-1, -2)
    p = P.sum(1)
    neg = psi_minus * (p[:, None] * p[None, :])
    return (psi_plus * P * (beta**2 / 8 - beta / 2) + neg * (beta**2 / 8 + beta / 2)).sum((-1, -2))


def qwem_gradient(W: Tensor, M: Tensor, g: float = 1.0) -> Tensor:
    """∇L = (g/2)(WWᵀ − M*)W under constant weighting g, computed as W(WᵀW) − M*W (no V × V product);
    for W [E, V, d] the members' M*W is one [V, V] × [V, E·d] product (2.4× faster than a batched one)."""
    if W.dim() == 3:
        E, V, d = W.shape
        MW = (M @ W.transpose(0, 1).reshape(V, E * d)).reshape(V, E, d).transpose(0, 1)
    else:
        MW = M @ W
    return (g / 2) * (W @ (W.transpose(-1, -2) @ W) - MW)


def qwem_loss(W: Tensor, M: Tensor, g: float = 1.0) -> Tensor:
    """(g/8)(||WWᵀ||² − 2 tr(WᵀM*W)) [E]: the contrastive loss under constant weighting, without its constant."""
    K = W.transpose(-1, -2) @ W
    return (g / 8) * ((K**2).sum((-1, -2)) - 2 * (W * (M @ W)).sum((-1, -2)))


def gaussian_init(V: int, dims: Sequence[int], seeds: Sequence[int], sigma: float) -> np.ndarray:
    """W₀ [E, V, max d] for members (seed, d) in seed-major order: entries N(0, σ²) in the first d columns
    (numpy generator `seed`, so a member's init does not depend on the others), zeros elsewhere."""
    require(sigma > 0 and all(1 <= d < V for d in dims), f"need σ > 0 and 1 ≤ d < V={V}; got σ={sigma}, dims={list(dims)}")
    out = np.zeros((len(seeds) * len(dims), V, max(dims)))
    for i, (s, d) in enumerate((s, d) for s in seeds for d in dims):
        out[i, :, :d] = sigma * np.random.default_rng(int(s)).normal(size=(V, d))
    return out


@dataclass(frozen=True)
class QwemRun:
    """Records of `train_qwem`: `time` [T] (t = kη), `steps` [T], `eigenvalues` [T, E, d_max] of WᵀW
    (descending), `loss` [T, E] (`qwem_loss`), and the final embeddings `W` [E, V, d_max]."""

    time: np.ndarray
    steps: np.ndarray
    eigenvalues: np.ndarray
    loss: np.ndarray
    W: np.ndarray


def train_qwem(M: np.ndarray, W0: np.ndarray, lr: float, steps: int, every: int = 10, g: float = 1.0,
               optimizer: str = "gd", device: str = "cpu") -> QwemRun:
    """Train every member of W₀ [E, V, d] on the QWEM loss with target M* [V, V] (float64, batched)."""
    from ..dynamics.optim import OptimizerSpec, init_state, step

    require(lr > 0 and steps >= 1 and every >= 1, f"need lr > 0, steps ≥ 1, every ≥ 1; got {lr}, {steps}, {every}")
    require(W0.ndim == 3 and W0.shape[1] == M.shape[0], f"W0 must be [E, V={M.shape[0]}, d]; got {W0.shape}")
    spec = OptimizerSpec(kind=optimizer)  # type: ignore[arg-type]
    Mt = torch.as_tensor(M, dtype=torch.float64, device=device)
    params = {"W": torch.as_tensor(W0, dtype=torch.float64, device=device).clone()}
    E = W0.shape[0]
    rate = {"W": torch.full((E,), float(lr), dtype=torch.float64, device=device)}
    state = init_state(spec, params)
    rec_steps, eig, loss = [], [], []

    def record(k: int) -> None:
        W = params["W"]
        rec_steps.append(k)
        eig.append(torch.linalg.eigvalsh(W.transpose(-1, -2) @ W).flip(-1).cpu().numpy())
        loss.append(qwem_loss(W, Mt, g).cpu().numpy())

    record(0)
    for k in range(1, steps + 1):
        params, state = step(spec, params, {"W": qwem_gradient(params["W"], Mt, g)}, state, rate, {})
        if k % every == 0 or k == steps:
            record(k)
    s = np.asarray(rec_steps)
    return QwemRun(s * float(lr), s, np.stack(eig), np.stack(loss), params["W"].cpu().numpy())


def crossing_times(time: np.ndarray, u: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """First time each column of u [T, K] reaches its level (linear interpolation between records; 0 if
    already there at t = 0, NaN if never)."""
    out = np.full(u.shape[1], np.nan)
    for k in range(u.shape[1]):
        hit = np.flatnonzero(u[:, k] >= levels[k])
        if len(hit):
            i = hit[0]
            out[k] = time[0] if i == 0 else time[i - 1] + (levels[k] - u[i - 1, k]) * (time[i] - time[i - 1]) / (u[i, k] - u[i - 1, k])
    return out


def nearest_neighbours(W: np.ndarray, vocab: Sequence[str], queries: Sequence[str], k: int) -> dict[str, list[str]]:
    """The k nearest words of each query by cosine similarity of the rows of W (the query excluded)."""
    X = W / np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-300)
    out = {}
    for q in queries:
        require(q in vocab, f"query word {q!r} is not in the vocabulary; choose one of {', '.join(vocab[:10])}, ...")
        i = list(vocab).index(q)
        sim = X @ X[i]
        sim[i] = -np.inf
        out[q] = [vocab[j] for j in np.argsort(-sim, kind="stable")[:k]]
    return out


# --- the reproduction ---------------------------------------------------------------------------------------
# V = 200 words, window 5: the top eigenvalue ratios λ_{k+1}/λ_k are 0.84, 0.87, 0.90, 0.94 (d ≤ 5 are separated
# enough for stepwise learning from σ = 1e-12: ln(λ/u₀) ≈ 57); lr: ηgλ₁/2 ≈ 0.015 (GD delays the steps by ≈ 0.7 %)
QUICK = dict(vocab=200, window=5, dims=[3, 5], seeds=4, sigma=1e-12, control_sigma=0.3, control_T=1.0, lr=5e-4, T=4.5,
             every=10, g=1.0,
             queries=["exception", "class", "string", "list", "function", "true"], neighbours=5, checkpoints=5)
FULL = dict(QUICK, seeds=16, lr=1.25e-4, every=40)
SEQ_LEVEL = 0.25      # "one at a time": when mode k is half learned, mode k+1 is below a quarter of λ_{k+1}
SIGMOID_TOL = 0.02    # GD delays every step by ≈ ηgλ_k/2 ≤ 0.75 % (quick lr); the small-init sigmoid adds < 0.1 %
CORPUS_TOL = 0.15     # with u_k(0) = E r_k², ln r_k² ~ ln σ²χ²_(d−k+1) fluctuates by up to ≈ 2.2/ln(λ/u₀) ≈ 4 % (k = d)
ANGLE_TOL = 2.0       # degrees


def _members(cfg: dict) -> list[tuple[int, int]]:
    return [(s, d) for s in range(cfg["seeds"]) for d in cfg["dims"]]


def measure(M: np.ndarray, cfg: dict, sigma: float, device: str, T: float | None = None) -> dict:
    """Train the (seeds × dims) ensemble from N(0, σ²) entries up to t = T; records and the init."""
    W0 = gaussian_init(M.shape[0], cfg["dims"], range(cfg["seeds"]), sigma)
    steps = int(round((T or cfg["T"]) / cfg["lr"]))
    run = train_qwem(M, W0, cfg["lr"], steps, cfg["every"], cfg["g"], device=device)
    return dict(run=run, W0=W0, sigma=sigma)


def per_member(meas: dict, M: np.ndarray, lam: np.ndarray, cfg: dict, upto: int | None = None) -> list[dict]:
    """Per member: measured step times t̂_k (u_k = λ_k/2), the sigmoid's t_k from the member's effective
    initial strengths r_k² (`effective_init`) and from their mean (d − k + 1)σ² (corpus statistics and init
    scale only), and the next mode's share u_{k+1}(t̂_k)/λ_{k+1}."""
    from ..errors import LazyrichError
    from ..theory.word_embeddings import effective_init, learned_rank, sigmoid_step_times

    run = meas["run"]
    keep = slice(None) if upto is None else run.steps <= upto
    t, eig = run.time[keep], run.eigenvalues[keep]
    out = []
    for e, (s, d) in enumerate(_members(cfg)):
        u = eig[:, e, :d]
        t_hat = crossing_times(t, u, lam[:d] / 2)
        pred = {}
        corpus_u0 = (d - np.arange(d)) * meas["sigma"] ** 2  # E r_k² = (d − k + 1)σ²
        for key, u0 in (("sigmoid", effective_init(M, meas["W0"][e, :, :d])), ("corpus", corpus_u0)):
            try:
                pred[key] = sigmoid_step_times(lam[:d], u0, cfg["g"])
            except LazyrichError:  # a large init has no small-init step times
                pred[key] = np.full(d, np.nan)
        nxt = [np.interp(t_hat[k], t, eig[:, e, k + 1]) / lam[k + 1] if np.isfinite(t_hat[k]) else np.nan
               for k in range(d - 1)]
        r = learned_rank(u, lam)
        out.append(dict(seed=s, d=d, t_hat=t_hat, t_sigmoid=pred["sigmoid"], t_corpus=pred["corpus"],
                        next_share=float(np.max(nxt)), rank_ok=bool(r[0] == 0 and r[-1] == d and set(np.diff(r)) <= {0, 1})))
    return out


def _per_seed(pm: list[dict], fn) -> list[float]:  # noqa: ANN001 - member dict → value; the max over a seed's sizes
    return [float(np.max([fn(m) for m in pm if m["seed"] == s])) for s in sorted({m["seed"] for m in pm})]


def stepwise_claims(pm: list[dict], prefix: str = "") -> list:
    """The stepwise signature as claims over seeds: step times vs the sigmoid (the member's effective
    initial strengths; their mean only) and one-at-a-time learning."""
    from .base import over_seeds

    rel = lambda m, key: float(np.max(np.abs(m["t_hat"] / m[key] - 1)))  # noqa: E731
    return [
        over_seeds(f"{prefix}step-times", f"measured step times t̂_k (u_k = λ_k/2) vs the sigmoid's t_k = ln(λ_k/u_k(0) − 1)/(gλ_k) "
                   "from the member's effective initial strengths u_k(0) = r_k² (Gram–Schmidt residuals of v_kᵀW₀): "
                   f"per seed max over modes and sizes of |t̂/t − 1|, mean ≤ {SIGMOID_TOL}",
                   SOURCE, "derived", _per_seed(pm, lambda m: rel(m, "t_sigmoid")), 0.0, SIGMOID_TOL, "at_most"),
        over_seeds(f"{prefix}step-times-corpus", "the same with u_k(0) = E r_k² = (d − k + 1)σ² (corpus statistics and "
                   f"init scale only): mean over seeds ≤ {CORPUS_TOL}", SOURCE, "derived", _per_seed(pm, lambda m: rel(m, "t_corpus")), 0.0,
                   CORPUS_TOL, "at_most"),
        over_seeds(f"{prefix}sequential", "one subspace at a time: when mode k reaches λ_k/2, mode k+1 is below "
                   f"{SEQ_LEVEL}·λ_{{k+1}} (per seed max over k < d and sizes of u_{{k+1}}(t̂_k)/λ_{{k+1}}, mean ≤ {SEQ_LEVEL})",
                   SOURCE, "paper", _per_seed(pm, lambda m: m["next_share"]), 0.0, SEQ_LEVEL, "at_most")]


@reproduction("word-embeddings-stepwise", "Quadratic word embeddings on Python's docs learn the eigenmodes of M* one at a time: "
              "step times vs the sigmoid and the exact flow, final subspaces vs eigenvectors, nearest neighbours; large init: no steps",
              quick=QUICK, full=FULL, runtime={"quick": "20-45 s (1 thread, loaded 2-core CPU; 10 s of CPU)",
                                             "full": "3.5-5 min (1 thread, loaded 2-core CPU; 40 s of CPU)"},
              source=SOURCE, knobs={"sigma": [1e-6, 1e-3], "seeds": [8]},
              decisive=["step-times", "step-times-corpus", "sequential", "final-subspace"])
def run(ctx: Context) -> None:
    from ..tasks.corpus import pydoc_corpus
    from ..theory.word_embeddings import exact_step_times, final_embeddings, principal_angles, qwem_target, target_spectrum

    cfg = ctx.cfg
    corpus = pydoc_corpus(cfg["vocab"], cfg["window"])
    M = qwem_target(corpus.joint)
    lam, U = target_spectrum(M)
    main = measure(M, cfg, cfg["sigma"], ctx.device)
    pm = per_member(main, M, lam, cfg)
    run_ = main["run"]
    for c in stepwise_claims(pm):
        ctx.add(c)
    exact = [exact_step_times(M, main["W0"][e, :, :d], cfg["T"], cfg["g"], grid=40) for e, (_, d) in enumerate(_members(cfg))]
    tol = cfg["lr"] * cfg["g"] * lam[0] / 2
    ctx.claim("step-times-exact", "measured step times vs the exact flow from each member's own init (closed form): max over "
              f"members and modes of |t̂/t − 1| ≤ ηgλ₁/2 = {tol:.3g} (GD's first-order delay, (1 + ηgλ/2)ᵏ vs e^{{kηgλ/2}})",
              SOURCE, "derived", float(max(np.max(np.abs(m["t_hat"] / x - 1)) for m, x in zip(pm, exact))), 0.0, tol, "at_most")
    ctx.claim("rank-increments", "the effective rank #{k: u_k ≥ λ_k/2} starts at 0, grows by one at a time and saturates at d "
              "(members where it does not)", SOURCE, "paper", sum(not m["rank_ok"] for m in pm), 0.0, 0.0)
    Wf = run_.W
    spec = max(float(np.max(np.abs(run_.eigenvalues[-1, e, :d] / lam[:d] - 1))) for e, (_, d) in enumerate(_members(cfg)))
    ctx.claim("final-spectrum", f"final eigenvalues of WᵀW equal the top-d eigenvalues of M* (t = {cfg['T']:g}): max relative "
              "error ≤ 0.01", SOURCE, "paper", spec, 0.0, 0.01, "at_most")
    angles = [float(np.degrees(principal_angles(Wf[e, :, :d], U[:, :d])[-1])) for e, (_, d) in enumerate(_members(cfg))]
    ctx.over_seeds("final-subspace", "final embedding subspace vs the top-d eigenvectors of M*: largest principal angle "
                   f"(degrees, per seed max over sizes), mean ≤ {ANGLE_TOL}°", SOURCE, "paper",
                   _per_seed([dict(m, angle=a) for m, a in zip(pm, angles)], lambda m: m["angle"]), 0.0, ANGLE_TOL, "at_most")
    d_nn = max(cfg["dims"])
    e_nn = _members(cfg).index((0, d_nn))
    nn_run = nearest_neighbours(Wf[e_nn, :, :d_nn], corpus.vocab, cfg["queries"], cfg["neighbours"])
    nn_th = nearest_neighbours(final_embeddings(M, d_nn), corpus.vocab, cfg["queries"], cfg["neighbours"])
    agree = float(np.mean([len(set(nn_run[q]) & set(nn_th[q])) / cfg["neighbours"] for q in cfg["queries"]]))
    ctx.claim("neighbours", f"nearest neighbours (cosine, d = {d_nn}, seed 0) of {len(cfg['queries'])} query words: share shared "
              "with the theory's final embeddings U_d diag(√λ_d) ≥ 0.9", SOURCE, "derived", agree, 1.0, 0.1, "at_least")
    # negative control: a large init (WᵀW starts at ≈ 0.4 λ_k in every direction, ln(λ/u₀) ≈ 1-5 instead of 57)
    # starts every mode at once: the stepwise signature must fail (σ = 1 would start WᵀW above λ_k/2 everywhere:
    # steps undefined rather than absent; σ = 0.1 leaves step-times-corpus straddling its band at 16 seeds)
    ctrl = measure(M, cfg, cfg["control_sigma"], ctx.device, cfg["control_T"])  # every mode is up by t ≈ 0.3
    pc = per_member(ctrl, M, lam, cfg)
    ctx.control("control-large-init", f"with a large init (σ = {cfg['control_sigma']:g} instead of {cfg['sigma']:g}) the modes are "
                "learned together, not one at a time at the sigmoid's times: the stepwise claims must fail", SOURCE,
                stepwise_claims(pc, prefix="large-init-"))
    every = max(1, len(run_.steps) // cfg["checkpoints"])
    ctx.at_checkpoints(list(run_.steps[every::every]), lambda s: stepwise_claims(per_member(main, M, lam, cfg, upto=s)))
    _report(ctx, corpus, lam, pm, exact, nn_run, nn_th, angles)
    _figures(ctx, M, lam, main, ctrl, cfg)


def _report(ctx: Context, corpus, lam: np.ndarray, pm: list[dict], exact: list[np.ndarray],  # noqa: ANN001 - Corpus
            nn_run: dict[str, list[str]], nn_th: dict[str, list[str]], angles: list[float]) -> None:
    """Corpus statistics, per-member step times (step_times.csv) and the nearest-neighbour table (neighbours.md)."""
    import pandas as pd

    d = max(ctx.cfg["dims"])
    ctx.note(f"Corpus: pydoc_data.topics (sha256 {corpus.digest[:12]}…), {corpus.tokens} tokens, V = {len(corpus.vocab)}, "
             f"window {corpus.window}; M* has {int((lam > 0).sum())} positive eigenvalues, top {d}: "
             + ", ".join(f"{x:.2f}" for x in lam[:d]) + f"; λ_{d + 1} = {lam[d]:.2f}.")
    rows = [dict(seed=m["seed"], d=m["d"], mode=k + 1, lam=lam[k], t_measured=m["t_hat"][k], t_exact=x[k],
                 t_sigmoid=m["t_sigmoid"][k], t_corpus=m["t_corpus"][k], final_angle_deg=a)
            for m, x, a in zip(pm, exact, angles) for k in range(m["d"])]
    pd.DataFrame(rows).to_csv(ctx.out / "step_times.csv", index=False)
    lines = [f"| word | trained (d = {d}, seed 0) | theory U_d diag(√λ_d) |", "|---|---|---|"]
    lines += [f"| {q} | {', '.join(nn_run[q])} | {', '.join(nn_th[q])} |" for q in nn_run]
    (ctx.out / "neighbours.md").write_text("\n".join(lines) + "\n")
    for q in nn_run:
        ctx.note(f"Nearest neighbours of '{q}' (trained, d = {d}): {', '.join(nn_run[q])}; theory: {', '.join(nn_th[q])}.")


def _figures(ctx: Context, M: np.ndarray, lam: np.ndarray, main: dict, ctrl: dict, cfg: dict) -> None:
    import matplotlib.pyplot as plt

    from ..theory.word_embeddings import effective_init, plateau_losses, qwem_flow, sigmoid_modes, sigmoid_step_times

    d = max(cfg["dims"])
    e = _members(cfg).index((0, d))
    r, rc = main["run"], ctrl["run"]
    sub = slice(None, None, max(1, len(r.time) // 300))
    t = r.time[sub]
    flow = qwem_flow(t, M, main["W0"][e, :, :d], cfg["g"])
    u0 = effective_init(M, main["W0"][e, :, :d])
    sig = sigmoid_modes(t, lam[:d], u0, cfg["g"])
    fig, ax = plt.subplots(1, 4, figsize=(16, 3.6))
    colors = plt.cm.viridis(np.linspace(0, 0.85, d))
    for k, c in enumerate(colors):
        ax[0].plot(t, r.eigenvalues[sub, e, k] / lam[k], "-", color=c, lw=2, alpha=0.6, label=f"mode {k + 1}, λ = {lam[k]:.1f}")
        ax[0].plot(t, flow["gram_eigenvalues"][:, k] / lam[k], "k--", lw=0.8)
        ax[0].plot(t, sig[:, k] / lam[k], ":", color="r", lw=0.8)
    tk = sigmoid_step_times(lam[:d], u0, cfg["g"])
    for x in tk:
        ax[0].axvline(x, color="r", lw=0.4, alpha=0.5)
    window = (0.7 * tk[0], min(1.6 * tk[-1], r.time[-1]))
    ax[0].set(xlabel="t = kη", ylabel="u_k / λ_k (eigenvalues of WᵀW)",
              title=f"GD (colour), exact flow (--), sigmoid (:), σ = {cfg['sigma']:g}")
    ax[0].legend(fontsize=6)
    ax[0].set_xlim(*window)
    ax[1].plot(r.time, r.loss[:, e], "k-", lw=1.2, label="GD, small init")
    ax[1].plot(t, flow["loss"], "r--", lw=0.8, label="exact flow")
    ax[1].plot(rc.time, rc.loss[:, e], "-", color="tab:gray", lw=1, label=f"control σ = {cfg['control_sigma']:g}")
    for level in plateau_losses(M, d, cfg["g"]):
        ax[1].axhline(level, color="tab:blue", lw=0.4, alpha=0.6)
    ax[1].set(xlabel="t = kη", ylabel="QWEM loss (no constant)", title="loss staircase; plateaus −(g/8)Σ_{j≤k}λ_j²")
    low = plateau_losses(M, d, cfg["g"])[-1]
    ax[1].set_ylim(1.1 * low, -0.1 * low)
    ax[1].set_xlim(0, window[1])
    ax[1].legend(fontsize=6)
    tc = rc.time[rc.time <= 0.5]  # the control's modes are all up by t ≈ 0.3
    for k, c in enumerate(colors):
        ax[2].plot(tc, rc.eigenvalues[: len(tc), e, k] / lam[k], "-", color=c)
    ax[2].set(xlabel="t = kη", ylabel="u_k / λ_k", title=f"control: large init σ = {cfg['control_sigma']:g}, modes together")
    n = min(40, len(lam))
    ax[3].plot(np.arange(1, n + 1), lam[:n], "o", ms=3)
    ax[3].axvline(d + 0.5, color="r", lw=0.6)
    ax[3].set(xlabel="k", ylabel="λ_k of M*", title=f"target spectrum (V = {cfg['vocab']}, window {cfg['window']})")
    fig.tight_layout()
    ctx.figure(fig, "stepwise", "Quadratic word embeddings on Python's documentation. (1) Eigenvalues of WᵀW over λ_k under GD "
               "(colour) with the exact gradient-flow solution from the same init (black dashed) and the per-mode sigmoid "
               "(red dotted; vertical lines: predicted step times). (2) The loss staircase with the plateaus of the theory; "
               "grey: the large-init control. (3) The control: all modes rise together. (4) The spectrum of M*; the red line "
               "is the largest embedding size.")
