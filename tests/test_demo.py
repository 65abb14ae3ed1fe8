"""`lazyrich demo`'s summary on synthetic records with a known answer: the best cell with its seed interval,
whether it agrees with Kunin et al. (and where it does not, at which steps upstream led), the kernel-distance
statement. The demo run itself is tested in test_cli.py."""
from __future__ import annotations

import numpy as np
import pandas as pd

from lazyrich.demo import summary_lines

CELLS = [(0.1, -1.0), (0.1, 0.0), (0.1, 1.0), (1.0, -1.0), (1.0, 0.0), (1.0, 1.0)]


def records(test: dict[int, dict[tuple[float, float], float]], kernel: dict[tuple[float, float], float],
            seeds: int = 5, spread: float = 0.05) -> pd.DataFrame:
    """test[step][cell] = seed-mean test loss (multiplicative noise `spread` per seed); kernel distance at the last step."""
    rng = np.random.default_rng(0)
    last = max(test)
    rows = []
    for s in range(seeds):
        for (t, d) in CELLS:
            for step, cells in test.items():
                rows.append(dict(seed=s, tau=t, delta=d, step=step, observable="test_loss", value=cells[(t, d)]))
            rows.append(dict(seed=s, tau=t, delta=d, step=last, observable="kernel_distance", value=kernel[(t, d)]))
    r = pd.DataFrame(rows).assign(layer="", index=0)
    return r.assign(value=r.value * np.exp(spread * rng.standard_normal(len(r))))


def loss(best: tuple[float, float], value: float) -> dict[tuple[float, float], float]:
    return {c: (value if c == best else 1e-2) for c in CELLS}


KERNEL_UP = {c: (0.5 if c == (0.1, 1.0) else 0.05) for c in CELLS}


def test_disagreement_names_the_cell_its_interval_and_where_upstream_led():
    r = records({10: loss((0.1, 1.0), 1e-3), 100: loss((0.1, 1.0), 1e-3), 1000: loss((0.1, -1.0), 1e-4)}, KERNEL_UP)
    train = r[(r.observable == "test_loss") & (r.step == 1000)].assign(observable="loss")
    train = train.assign(value=np.where(train.delta > 0, 1e-6, 1e-5))  # upstream fits further, tests worse
    best, agree, kernel = summary_lines(pd.concat([r, train]))
    assert "step 1000 (5 seeds): τ=0.1, δ=-1" in best
    # gap = log10(1e-2 / 1e-4) = +2 up to the 5 % noise; every resample keeps the δ ≤ 0 cell best
    gap = float(best.split("log10 ratio ")[1].split(",")[0])
    lo, hi = (float(x) for x in best.split("CI [")[1].split("]")[0].split(", "))
    assert abs(gap - 2) < 0.1 and 1.8 < lo < gap < hi < 2.2
    assert "upstream best in 0% of seed resamples" in best
    assert agree.startswith("does not agree with Kunin et al.")
    assert "upstream best (interval below 0) at steps 10–100" in agree and "δ ≤ 0 best (interval above 0) at steps 1000" in agree
    assert "Upstream fits the training set further (train loss 1e-06 vs 1e-05) yet tests worse" in agree
    assert kernel.startswith("largest kernel distance S(0,1000) at τ=0.1, δ=+1") and "agrees with Kunin" in kernel


def test_agreement_and_undecided():
    r = records({10: loss((0.1, -1.0), 1e-3), 100: loss((0.1, 1.0), 1e-4)}, KERNEL_UP)
    best, agree, _ = summary_lines(r)
    assert "τ=0.1, δ=+1" in best and "upstream best in 100% of seed resamples" in best
    assert agree.startswith("agrees with Kunin et al.") and "δ ≤ 0 best (interval above 0) at steps 10" in agree
    # two cells 10 % apart under 100 % seed noise, 3 seeds: the interval straddles 0
    close = {c: (1e-3 if c == (0.1, 1.0) else 1.1e-3 if c == (0.1, -1.0) else 1e-2) for c in CELLS}
    _, agree, kernel = summary_lines(records({100: close}, {c: 0.1 for c in CELLS}, seeds=3, spread=1.0))
    assert agree.startswith("undecided against Kunin et al.") and "straddles 0" in agree
    assert "agrees" not in kernel
