"""`lazyrich view`: the page from a real (tiny) sweep store, opened in headless Chromium: loads with a
clean console and no network, the step slider changes the heatmap, a click shows the cell's
trajectories, and the single-neuron theory overlay equals lazyrich.theory at the stored times."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from lazyrich.cli import main
from tests.browser import need_browser, open_page

SPEC = """
name: neuron
task: {name: whitened_regression, d: 3, n: 12, seed: 0}
model: {width: 1, depth: 2, activation: linear}
optimizer: {kind: gd, lr: 0.01}
steps: 400
record: {log: 6}
observables: [loss, kernel_distance]
axes:
  - grid: {std_scale: [0.1, 0.5, 1.0], lr: [0.005, 0.01]}
  - zip: {seed: [0, 1]}
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("view")
    (root / "neuron.yaml").write_text(textwrap.dedent(SPEC))
    main(["sweep", str(root / "neuron.yaml"), "--store", str(root / "s.duckdb"), "--quiet"])
    return root / "s.duckdb"


def test_payload_axes_values_and_theory(store):
    from lazyrich.sweep import Store
    from lazyrich.view import collect

    p = collect(store)
    assert p["axes"] == ["lr", "seed", "std_scale"]
    assert p["observables"] == ["kernel_distance", "kernel_target_alignment", "loss"]
    recs = Store(store).records(Store(store).resolve("latest"))
    last = recs[(recs.observable == "loss") & (recs.step == p["steps"][-1])].sort_values("member").value.to_numpy()
    np.testing.assert_array_equal(np.array(p["values"]["loss"][-1], dtype=float), last)
    # theory: GD at lr ≤ 0.01 tracks gradient flow at t = Σ η to the step's O(η) error, not bitwise
    th = np.array([p["theory"]["loss"][str(m)] for m in p["members"]["member"]], dtype=float)
    sim = np.array(p["values"]["loss"], dtype=float).T
    assert np.allclose(th[:, 0], sim[:, 0], rtol=1e-12)          # t = 0: the same init, exactly
    assert np.max(np.abs(th - sim) / sim[:, :1]) < 0.02 and "single neuron" in p["theory_note"]  # 2 % of the initial loss


def test_view_in_headless_chromium(store, tmp_path):
    need_browser()
    page_path = tmp_path / "view.html"
    main(["view", str(store), "--out", str(page_path)])
    with open_page(page_path, 1400, 1000) as opened:
        page = opened.page
        page.select_option("#obs", "loss")
        page.select_option("#xaxis", "std_scale")
        page.select_option("#yaxis", "lr")
        z = "() => JSON.stringify(document.getElementById('heat').data[0].z)"
        last = page.evaluate(z)
        page.eval_on_selector("#step", "el => { el.value = 0; el.dispatchEvent(new Event('input')); }")
        first = page.evaluate(z)
        assert first != last and "step 0" in page.inner_text("#steplabel")
        assert page.evaluate("() => document.getElementById('traj').data === undefined || "
                             "document.getElementById('traj').data.length === 0")
        box = page.locator("#heat .nsewdrag").first.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.8)  # a corner cell
        page.wait_for_function("() => (document.getElementById('traj').data || []).length > 0", timeout=10_000)
        traces = page.evaluate("() => document.getElementById('traj').data.map(t => [t.name, t.y.length])")
        shown = page.inner_text("#selection")
        config = page.inner_text("#config")
    assert opened.errors == [] and opened.offline, (opened.errors, opened.requests)
    names = [n for n, _ in traces]
    assert sum(n.startswith("member") for n in names) == 2  # the cell holds the two seeds
    assert sum(n.startswith("theory") for n in names) == 2 and all(k == 7 for _, k in traces)  # 7 recorded steps
    assert "std_scale=0.1" in shown and "lr=0.005" in shown
    assert '"whitened_regression"' in config


def test_view_refuses_bad_input_in_one_line(store, tmp_path, capsys):
    for argv, needle in [(["view", str(tmp_path)], "is a directory"),
                         (["view", str(store), "--out", str(tmp_path)], "is a directory"),
                         (["view", str(store), "--observable", "nope"], "was not recorded"),
                         (["view", str(store), "nope-run"], "nope-run")]:
        with pytest.raises(SystemExit) as ex:
            main(argv)
        err = capsys.readouterr().err
        assert ex.value.code == 2 and needle in err and len(err.strip().splitlines()) == 1, (argv, err)


LAMBDA_SPEC = """
name: wide
task: {name: whitened_regression, d: 3, n: 12, seed: 0}
model: {width: 2, depth: 2, activation: linear}
init: {kind: lambda_balanced}
optimizer: {kind: gd, lr: 0.01}
steps: 1500
record: {log: 5}
observables: [loss]
axes:
  - grid: {lam: [-0.5, -2.0], std_scale: [0.3]}
"""


def test_lambda_balanced_overlay_tracks_the_wide_linear_run(tmp_path):
    """Width 2 (not a single neuron): the overlay is Dominé et al.'s λ-balanced flow, which GD at
    lr = 0.01 tracks at t = Σ η to its O(η) step error (the closed form itself is checked against an
    independent float64 ODE in tests/theory)."""
    from lazyrich.view import collect

    (tmp_path / "wide.yaml").write_text(textwrap.dedent(LAMBDA_SPEC))
    main(["sweep", str(tmp_path / "wide.yaml"), "--store", str(tmp_path / "w.duckdb"), "--quiet"])
    p = collect(tmp_path / "w.duckdb")
    assert "λ-balanced" in p["theory_note"], p["theory_note"]
    th = np.array([p["theory"]["loss"][str(m)] for m in p["members"]["member"]], dtype=float)
    sim = np.array(p["values"]["loss"], dtype=float).T
    assert np.allclose(th[:, 0], sim[:, 0], rtol=1e-10)
    assert sim[:, -1].max() < 0.5 * sim[:, 0].min()  # the run learns, so the comparison is not trivial
    assert np.max(np.abs(th - sim) / sim[:, :1]) < 0.02
