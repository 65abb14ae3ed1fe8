"""grokking: modular addition groks fastest from an unbalanced rich (upstream) init (Kunin et al. 2024, Fig. 6d).

(a + b) mod p (Power et al. 2022) learned by a one-layer transformer — an ordinary `torch.nn.Module`
(token and positional `nn.Embedding`, one attention block through `F.scaled_dot_product_attention`, a
ReLU MLP, an unembedding) taken through the user-model path: `usermodels.parametrize(model, "sp",
optimizer="adam", overrides=...)` draws the init, with the token AND positional embeddings' init std
divided by α (α > 1: small embeddings, the rest at the standard scale — upstream, unbalanced rich);
`usermodels.param_groups` gives AdamW's groups. Logits are multiplied by τ and the lr divided by τ²
(Kumar et al. 2023). Grokking time = first evaluated step with validation accuracy ≥ 0.99.

All (α, seed) members train at once as one computation: `torch.func.stack_module_state` stacks the
parametrized modules' parameters along a leading member axis and one AdamW (elementwise, so stacked =
member by member) updates them. The forward of a step is `batched_logits`, the module's own function
written by hand for the stacked parameters (per-token tables instead of per-sequence projections: ~2.5×
faster than `vmap(functional_call(module))` on 1 CPU thread); the run checks it against the module itself,
vmapped, on the final parameters, and the tests to 1e-12 in float64. Each seed draws its own init and its
own train/validation split; members differing only in α share both.
Negative control: the embeddings MULTIPLIED by α_max instead (α = 1/α_max: downstream), where the speed-up
claims must fail.
"""
from __future__ import annotations

import copy
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn
from torch.func import functional_call, stack_module_state
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..errors import require
from ..usermodels import param_groups, parametrize
from .base import Claim, Context, k_of_n, ordering, over_seeds, reproduction

SOURCE = ("Kunin et al. 2024 (arXiv 2406.06158) Fig. 6d, Fig. 12, App. D.3; Power et al. 2022; "
          "shared/theory/experiments.md §1.4 (d)")
# choices the paper leaves open (p, train fraction, optimiser, lr, weight decay, width) — measured, see
# docs/reproductions.md: p = 31 and 60 % training pairs gave the clearest separation of the sizes tried on CPU
QUICK = dict(p=31, train_frac=0.6, d_model=64, n_heads=4, d_mlp=128, tau=1.0, lr=1e-2, weight_decay=1.0,
             betas=[0.9, 0.98], alphas=[0.01, 1.0, 100.0], seeds=[0, 1, 2], steps=1000, grid_ratio=1.05,
             threshold=0.99)
FULL = dict(QUICK, alphas=[0.01, 0.1, 1.0, 10.0, 32.0, 100.0], seeds=list(range(8)), steps=3000)
SPEEDUP = 1 / 3  # [inferred] median grokking step at the largest α ≤ 1/3 × the median at α = 1


class ModAddTransformer(nn.Module):
    """One-layer transformer on the sequence (a, b, '=') → logits over p classes read at '='.

    Residual stream without layer norm (as Nanda et al.'s grokking model); logits × τ. Only the '='
    position's output is read, and in one layer no other position's output reaches it, so the query and
    the MLP are computed at that position only (the same function as a causal transformer run at every
    position and read at '=': the last position attends to all three)."""

    def __init__(self, p: int, d_model: int, n_heads: int, d_mlp: int, tau: float = 1.0) -> None:
        super().__init__()
        self.p, self.n_heads, self.tau = p, n_heads, tau
        self.tok = nn.Embedding(p + 1, d_model)  # tokens 0..p-1 and '=' (= p)
        self.pos = nn.Embedding(3, d_model)
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.k = nn.Linear(d_model, d_model, bias=False)
        self.v = nn.Linear(d_model, d_model, bias=False)
        self.o = nn.Linear(d_model, d_model, bias=False)
        self.mlp_in = nn.Linear(d_model, d_mlp)
        self.mlp_out = nn.Linear(d_mlp, d_model)
        self.unembed = nn.Linear(d_model, p, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n, t = tokens.shape
        h = self.n_heads
        x = self.tok(tokens) + self.pos(torch.arange(t, device=tokens.device))  # [n, t, d]
        d = x.shape[-1]
        last = x[:, -1]  # [n, d]
        q = self.q(last).view(n, 1, h, d // h).transpose(1, 2)  # [n, h, 1, dh]
        k = self.k(x).view(n, t, h, d // h).transpose(1, 2)  # [n, h, t, dh]
        v = self.v(x).view(n, t, h, d // h).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, k, v)  # the last position attends to all three
        r = last + self.o(a.transpose(1, 2).reshape(n, d))
        r = r + self.mlp_out(F.relu(self.mlp_in(r)))
        return self.tau * self.unembed(r)


EMBEDDINGS = ("tok.weight", "pos.weight")


def make_model(cfg: dict, alpha: float, seed: int, dtype: torch.dtype = torch.float32) -> nn.Module:
    """The transformer through the user-model path: SP for Adam, embeddings' init std ÷ α, drawn with `seed`."""
    model = ModAddTransformer(cfg["p"], cfg["d_model"], cfg["n_heads"], cfg["d_mlp"], cfg["tau"]).to(dtype)
    over = {name: {"init_std": 1.0 / alpha} for name in EMBEDDINGS}  # SP embedding std is 1 (one-hot fan-in)
    return parametrize(model, "sp", optimizer="adam", overrides=over, seed=seed)


def split(p: int, train_frac: float, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """All p² pairs (a, b, '='), labels (a + b) mod p, randomly split (seeded) into train and validation."""
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    tokens = torch.stack([a.flatten(), b.flatten(), torch.full((p * p,), p)], 1)
    labels = (a.flatten() + b.flatten()) % p
    perm = torch.randperm(p * p, generator=torch.Generator().manual_seed(10_000 + seed))
    n_train = int(round(train_frac * p * p))
    tr, va = perm[:n_train], perm[n_train:]
    return tokens[tr], labels[tr], tokens[va], labels[va]


def eval_steps(steps: int, ratio: float) -> np.ndarray:
    """Evaluation steps: every step up to 1/(ratio − 1), then geometric with `ratio` (relative resolution)."""
    grid = np.unique(np.round(np.geomspace(1, steps, int(math.log(steps) / math.log(ratio)) + 1)).astype(int))
    return np.unique(np.concatenate([[0], grid, [steps]]))


def stacked_forward(model: nn.Module):
    """f(params, buffers, tokens[M, n, 3]) → logits [M, n, p]: the module vmapped over the member axis."""
    base = copy.deepcopy(model).to("meta")

    def one(params, buffers, tokens):
        return functional_call(base, (params, buffers), (tokens,))
    batched = torch.vmap(one, in_dims=(0, 0, 0))

    def f(params, buffers, tokens):
        # SDPA's fused CPU kernel has no vmap batching rule (it would loop over members); its math
        # backend is composed of batched ops
        with sdpa_kernel(SDPBackend.MATH):
            return batched(params, buffers, tokens)
    return f


def batched_logits(params: dict[str, torch.Tensor], tokens: torch.Tensor, n_heads: int, tau: float) -> torch.Tensor:
    """`ModAddTransformer.forward` for stacked members, by hand: params [M, ...] (from `stack_module_state`),
    tokens [M, n, t] → logits [M, n, p]. The same function (tested to 1e-12 in float64), computed faster: in one
    layer, a position's key and value depend only on its token and position, and the query and the residual at
    the read-out position only on the last token, and the projections are linear without bias. So keys, values
    and queries are computed once per (token, position) of the vocabulary, the attention scores once per (last
    token, token, position) — tables of a few thousand entries per member — and only looked up per sequence."""
    emb, pos = params["tok.weight"], params["pos.weight"]
    m, n, t = tokens.shape
    vocab, d = emb.shape[1:]
    h, dh = n_heads, d // n_heads

    def lin(name: str, x: torch.Tensor) -> torch.Tensor:  # x [M, r, in] → [M, r, out]
        y = x @ params[f"{name}.weight"].transpose(-1, -2)
        b = params.get(f"{name}.bias")
        return y if b is None else y + b[:, None]

    def lookup(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:  # table [M, r, c], idx [M, ...] → [M, ..., c]
        offset = (torch.arange(m, device=idx.device) * table.shape[1]).view(m, *[1] * (idx.dim() - 1))
        return F.embedding(idx + offset, table.reshape(m * table.shape[1], -1))

    def per_position(name: str) -> torch.Tensor:  # [M, t·V, d]: row i·V + v is name(tok[v] + pos[i])
        return (lin(name, emb)[:, None] + lin(name, pos[:, :t])[:, :, None]).reshape(m, t * vocab, d)

    last = tokens[:, :, -1]
    slot = tokens + torch.arange(t, device=tokens.device) * vocab  # [M, n, t]: row of each position in the tables
    q = lin("q", emb + pos[:, t - 1:t])  # [M, V, d]: the query of each possible last token
    k, v = per_position("k"), per_position("v")
    scores = torch.einsum("mahd,mbhd->mabh", q.view(m, vocab, h, dh), k.view(m, t * vocab, h, dh)) / math.sqrt(dh)
    w = lookup(scores.reshape(m, vocab * t * vocab, h), last[..., None] * (t * vocab) + slot).softmax(2)  # [M, n, t, h]
    a = (w[..., None] * lookup(v, slot).view(m, n, t, h, dh)).sum(2).reshape(m, n, d)
    r = lookup(emb + pos[:, t - 1:t], last) + lin("o", a)
    r = r + lin("mlp_out", F.relu(lin("mlp_in", r)))
    return tau * lin("unembed", r)


def train_members(cfg: dict, alphas: list[float], seeds: list[int], device: str = "cpu",
                  dtype: torch.dtype = torch.float32) -> dict:
    """Train every (α, seed) member at once, full batch, with AdamW. Returns the members [(α, seed)], the evaluation
    steps [E], train/validation accuracy and train loss [M, E], the final stacked parameters, and per member the
    largest deviation of `batched_logits` from the module's own (vmapped) forward on the validation pairs at the
    end, relative to the largest logit."""
    members = [(a, s) for a in alphas for s in seeds]
    models = [make_model(cfg, a, s, dtype).to(device) for a, s in members]
    params, buffers = stack_module_state(models)
    # the lr and wd scales of the user-model path (SP for Adam: all 1), by tensor name; lr ÷ τ² (Kumar et al.)
    groups = []
    for g in param_groups(models[0], cfg["lr"] / cfg["tau"] ** 2, cfg["weight_decay"]):
        groups.append({"params": [params[n] for n in g["names"]], "lr": g["lr"], "weight_decay": g["weight_decay"]})
    opt = torch.optim.AdamW(groups, betas=tuple(cfg["betas"]), foreach=True)
    data = [split(cfg["p"], cfg["train_frac"], s) for _, s in members]
    xtr, ytr, xva, yva = (torch.stack([d[i] for d in data]).to(device) for i in range(4))
    fast = lambda x: batched_logits(params, x, cfg["n_heads"], cfg["tau"])  # noqa: E731
    grid = eval_steps(cfg["steps"], cfg["grid_ratio"])
    acc_tr, acc_va, loss_tr = [], [], []
    todo = set(grid.tolist())

    def loss_of(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # [M] mean cross-entropy per member
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1)

    for step in range(cfg["steps"] + 1):
        if step in todo:
            with torch.no_grad():
                logits = fast(xtr)
                loss_tr.append(loss_of(logits, ytr).double().cpu().numpy())
                acc_tr.append((logits.argmax(-1) == ytr).double().mean(1).cpu().numpy())
                acc_va.append((fast(xva).argmax(-1) == yva).double().mean(1).cpu().numpy())
        if step == cfg["steps"]:
            break
        loss = loss_of(fast(xtr), ytr)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()  # members are independent: the sum's gradient is each member's own
        opt.step()
    with torch.no_grad():  # the user's module itself, vmapped over the members, on the final parameters
        module_val = stacked_forward(models[0])(params, buffers, xva)
        fast_val = fast(xva)
    deviation = ((module_val - fast_val).abs().amax((1, 2)) / module_val.abs().amax((1, 2))).cpu().numpy()
    return dict(members=members, steps=grid, acc_train=np.stack(acc_tr, 1), acc_val=np.stack(acc_va, 1),
                loss_train=np.stack(loss_tr, 1), params={k: v.detach() for k, v in params.items()},
                module_deviation=deviation)


def first_step(steps: np.ndarray, acc: np.ndarray, threshold: float, budget: int) -> np.ndarray:
    """Per member, the first evaluated step with acc ≥ threshold; `budget` when never reached (censored)."""
    hit = acc >= threshold
    return np.where(hit.any(1), steps[hit.argmax(1)], budget).astype(float)


def summarise(res: dict, cfg: dict) -> pd.DataFrame:
    """One row per member: α, seed, grokking step (val ≥ threshold), train-fit step (train acc = 1), whether
    it grokked within the budget, final accuracies and whether the final train loss is finite."""
    budget = cfg["steps"]
    grok = first_step(res["steps"], res["acc_val"], cfg["threshold"], budget)
    fit = first_step(res["steps"], res["acc_train"], 1.0, budget)
    return pd.DataFrame({"alpha": [a for a, _ in res["members"]], "seed": [s for _, s in res["members"]],
                         "grok": grok, "grokked": (res["acc_val"] >= cfg["threshold"]).any(1),
                         "fit": fit, "fitted": (res["acc_train"] >= 1.0).any(1),
                         "val_final": res["acc_val"][:, -1], "train_final": res["acc_train"][:, -1],
                         "finite": np.isfinite(res["loss_train"][:, -1])})


def speedup_claims(table: pd.DataFrame, cfg: dict, fast: float, prefix: str = "") -> list[Claim]:
    """The decisive claims evaluated on the members at α = `fast` (the largest α, or its mirror 1/α_max in the
    control) against α = 1: the per-seed ratio (same seed, same data split), median over seeds with its bootstrap
    interval, and the share of seeds that grok with its Clopper–Pearson interval."""
    g = table[table.alpha == fast].set_index("seed")
    one = table[table.alpha == 1.0].set_index("seed")
    tag = f"α = {fast:g}"
    return [
        over_seeds(f"{prefix}speedup", f"{tag} groks faster than α = 1: grokking step (first step with validation "
                   f"accuracy ≥ {cfg['threshold']:g}) at {tag} ÷ that at α = 1, same seed, median over seeds ≤ {SPEEDUP:.3g} "
                   f"(members that never grok count as the budget, {cfg['steps']} steps, so a censored α = 1 makes the "
                   f"measured ratio an upper bound; {len(g)} seeds; threshold inferred from Fig. 6d: 10²–10³ vs 10³–10⁴ steps)",
                   SOURCE, "inferred", (g.grok / one.grok.reindex(g.index)).to_numpy(), SPEEDUP, 0.0, "at_most",
                   statistic="median"),
        k_of_n(f"{prefix}majority-groks", f"most {tag} members reach validation accuracy {cfg['threshold']:g} within the "
               f"budget of {cfg['steps']} steps: share of seeds grokked > 1/2 (Clopper–Pearson; Fig. 6d: α = 100 groks within "
               "10³ steps; not all: 1 of 8 seeds stalled above 0.95 for 1500 steps in our measurement)", SOURCE, "inferred",
               g.grokked.to_numpy(), 0.5),
    ]


def table_claims(table: pd.DataFrame, cfg: dict, budget: int) -> list[Claim]:
    """Claims on the member table (also re-evaluated at earlier checkpoints under --sensitivity)."""
    alphas = sorted(cfg["alphas"])
    up = table[table.alpha >= 1.0]
    one = table[table.alpha == 1.0]
    grok = table.pivot(index="alpha", columns="seed", values="grok").loc[alphas].to_numpy()

    def ordered(idx: np.ndarray) -> bool:
        med = np.median(grok[:, idx], axis=1)
        return bool(np.ptp(med) > 0 and stats.spearmanr(alphas, med)[0] <= -0.8)
    med = np.median(grok, axis=1)
    rho = float(stats.spearmanr(alphas, med)[0]) if np.ptp(med) > 0 else float("nan")
    return [
        k_of_n("train-fits-early", f"members with α ≥ 1 fit their training set (train accuracy 1) within the first quarter "
               f"of the budget, {budget // 4} steps, in most members: share > 1/2 (Clopper–Pearson; Fig. 6d: train accuracy 1 "
               "by ≈ step 30 for all α; absolute steps differ with our model and lr, threshold inferred)", SOURCE, "inferred",
               (up.fit <= budget // 4).to_numpy(), 0.5),
        over_seeds("alpha1-groks-late", "α = 1 groks: its generalisation lags its memorisation, grokking step ÷ train-fit "
                   "step per seed, median over seeds ≥ 3 (censored grokking steps count as the budget, so the ratio is a "
                   "lower bound; threshold inferred from Fig. 6d, 10³–10⁴ vs ≈ 30 steps)", SOURCE, "inferred",
                   (one.grok / one.fit).to_numpy(), 3.0, 0.0, "at_least", statistic="median"),
        ordering("order", f"grokking is faster the larger α: Spearman rank correlation of α with the median grokking step "
                 f"over α ∈ {{{', '.join(f'{a:g}' for a in alphas)}}} ≤ −0.8 (Fig. 6d orders the curves 100, 32, 10, then "
                 "α ≤ 1; threshold inferred); verdict by the share of bootstrap resamples of the seeds where it holds",
                 SOURCE, "inferred", rho, -0.8, 0.0, "at_most", grok.shape[1], ordered),
    ]


def truncated(res: dict, step: int) -> dict:
    """The training history up to `step` (what a run with that budget would have recorded)."""
    keep = res["steps"] <= step
    return dict(res, steps=res["steps"][keep], **{k: res[k][:, keep] for k in ("acc_train", "acc_val", "loss_train")})


@reproduction("grokking", "Modular addition on a one-layer transformer (user-model path): embeddings ÷ α > 1 (upstream) grok fastest",
              quick=QUICK, full=FULL, runtime={"quick": "29 s (1 thread, lightly loaded 2-core CPU)", "full": "7.4 min CPU (1 thread, measured); no GPU run"}, source=SOURCE,
              knobs={"steps": [500, 2000], "seeds": [list(range(6))]},
              decisive=["speedup", "majority-groks", "order", "alpha1-groks-late"])
def run(ctx: Context) -> None:
    cfg = ctx.cfg
    alphas, budget = sorted(cfg["alphas"]), cfg["steps"]
    fast = max(alphas)
    mirror = next((a for a in alphas if math.isclose(a, 1.0 / fast)), None)
    require(1.0 in alphas and mirror is not None, "grokking: the α sweep needs α = 1 and the mirror 1/α_max")
    t0 = time.perf_counter()
    res = train_members(cfg, alphas, cfg["seeds"], ctx.device)
    ctx.note(f"trained {len(res['members'])} members (α × seed) as one batched computation in "
             f"{time.perf_counter() - t0:.1f} s")
    table = summarise(res, cfg)
    table.to_csv(ctx.out / "members.csv", index=False)

    ctx.claim("module-equivalence", "the hand-batched forward that trains the members is the user's module: on the final "
              "parameters its validation logits equal the module's own forward (vmap(functional_call)), largest "
              "deviation ÷ largest logit over members ≤ 1e-5 (float32 rounding; 1e-12 in float64 in the tests)",
              "tests/experiments/test_repro_grokking.py", "derived", float(res["module_deviation"].max()), 0.0, 1e-5, "at_most")
    ctx.claim("no-divergence", "every member's final training loss is finite", SOURCE, "derived",
              float((~table.finite).sum()), 0.0)
    for c in speedup_claims(table, cfg, fast):
        ctx.add(c)
    for c in table_claims(table, cfg, budget):
        ctx.add(c)

    def at_step(k: int) -> list[Claim]:
        c_k = dict(cfg, steps=k)
        t_k = summarise(truncated(res, k), c_k)
        return speedup_claims(t_k, c_k, fast) + table_claims(t_k, c_k, k)
    ctx.at_checkpoints([budget // 4, budget // 2, 3 * budget // 4], at_step)
    ctx.control("control-downstream", f"the embeddings multiplied by {fast:g} instead of divided (α = {mirror:g}, "
                "downstream): the speed-up claims must fail", SOURCE, speedup_claims(table, cfg, mirror, prefix="downstream-"))
    for a, g in table.groupby("alpha"):
        ctx.note(f"α = {a:g}: grokking steps {g.grok.astype(int).tolist()} ({int((~g.grokked).sum())} never grokked: "
                 f"recorded as the budget {budget}); train-fit steps {g.fit.astype(int).tolist()}; final validation "
                 f"accuracy {np.round(g.val_final, 3).tolist()}")
    ctx.note("user-model path: parametrize(model, 'sp', optimizer='adam', overrides={'tok.weight': {'init_std': 1/α}, "
             "'pos.weight': {'init_std': 1/α}}, seed=seed) draws each member; param_groups gives AdamW's groups "
             "(SP for Adam: every lr and wd scale is 1); torch.func.stack_module_state stacks the members")
    _figures(ctx, res, table)


def _figures(ctx: Context, res: dict, table: pd.DataFrame) -> None:
    cfg = ctx.cfg
    alphas = sorted(cfg["alphas"], reverse=True)
    colors = dict(zip(alphas, plt.cm.viridis(np.linspace(0.0, 0.9, len(alphas)))))
    steps = np.maximum(res["steps"], 1)
    alpha_of = np.array([a for a, _ in res["members"]])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, key, title in ((axes[0], "acc_train", "train"), (axes[1], "acc_val", "validation")):
        for a in alphas:
            acc = res[key][alpha_of == a]
            ax.semilogx(steps, acc.T, color=colors[a], lw=0.5, alpha=0.5)
            ax.semilogx(steps, np.median(acc, 0), color=colors[a], lw=2, label=f"α = {a:g}")
        ax.axhline(cfg["threshold"], color="grey", ls=":", lw=1)
        ax.set_xlabel("step")
        ax.set_title(f"{title} accuracy, (a + b) mod {cfg['p']}")
    axes[0].set_ylabel("accuracy")
    axes[1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    ctx.figure(fig, "accuracy", "Train (left) and validation (right) accuracy against step (log) for each embedding scale α "
               "(thick: median over seeds; thin: each seed), as Kunin et al. Fig. 6d. Dotted: the 0.99 grokking threshold.")

    fig, ax = plt.subplots(figsize=(5, 3.8))
    for a, g in table.groupby("alpha"):
        jitter = a * np.exp(np.linspace(-0.08, 0.08, len(g)))
        ok = g.grokked.to_numpy()
        ax.scatter(jitter[ok], g.grok[ok], color=colors[a], s=18)
        ax.scatter(jitter[~ok], g.grok[~ok], facecolors="none", edgecolors=colors[a], s=18)
    med = table.groupby("alpha")["grok"].median()
    ax.loglog(med.index, med.to_numpy(), "k-", lw=1, label="median")
    ax.axhline(cfg["steps"], color="grey", ls="--", lw=1, label=f"budget ({cfg['steps']} steps)")
    ax.set_xlabel("α (token and positional embeddings ÷ α)")
    ax.set_ylabel(f"grokking step (val. acc. ≥ {cfg['threshold']:g})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    ctx.figure(fig, "grokking_step", "Grokking step against α, one point per seed (open: never grokked within the budget, "
               "recorded as the budget); line: median. α > 1 is upstream (small embeddings), α < 1 downstream.")
