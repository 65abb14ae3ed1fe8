"""A chunk runs the configurations it was planned with: records equal an independent NumPy GD loop
and each member run alone; diverged members carry their step; members never interact."""
import numpy as np
import pytest

import lazyrich
from lazyrich.param import init as inits
from lazyrich.sweep import execute_chunk, from_dict, plan
from lazyrich.sweep.executor import tasks_for
from lazyrich.tasks import teacher_student


def _numpy_gd(w, a, x, y, lr, steps, scale):
    """Two-layer ReLU, f = a·relu(W x), loss = scale·mean (f − y)², plain GD (the authors' loop)."""
    losses = []
    n = x.shape[0]
    for _ in range(steps + 1):
        h = np.maximum(x @ w.T, 0.0)
        r = h @ a.T - y
        losses.append(scale * float(np.mean(r**2)))
        g = 2 * scale / n * r
        ga = g.T @ h
        gw = ((g @ a) * (h > 0)).T @ x
        w, a = w - lr * gw, a - lr * ga
    return np.array(losses)


def _loss(records, member):
    r = records[(records.member == member) & (records.observable == "loss")].sort_values("step")
    return r.step.to_numpy(), r.value.to_numpy()


def test_chunk_matches_numpy_reference(tiny):
    spec = from_dict(tiny(loss_scale=1.0, derived={"lr": "0.02 / tau**2"},
                          axes=[{"grid": {"tau": [0.5, 1.0], "delta": [-0.5, 0.5]}}, {"zip": {"seed": [3, 4], "task_seed": [5, 6]}}]))
    p = plan(spec)
    for task in tasks_for(p, p.chunks[:3:2]):  # chunks of task seeds 5 and 6
        result = execute_chunk(task)
        assert sorted(result.records.member.unique()) == list(task.chunk.members)
        for member in task.chunk.members:
            row = p.members.loc[member]
            data = teacher_student(5, 2, 20, 10, seed=int(row.task_seed))
            net = lazyrich.MLP((5, 6, 1))
            params = inits.kunin(net, [row.tau], [row.delta], [int(row.seed)])
            want = _numpy_gd(params["W1"][0].numpy(), params["W2"][0].numpy(), data.x.numpy(), data.y.numpy(),
                             row.lr, 30, 1.0)
            steps, got = _loss(result.records, member)
            np.testing.assert_array_equal(steps, [0, 10, 20, 30])
            np.testing.assert_allclose(got, want[steps], rtol=1e-12, atol=0)
            assert want[0] > 0 and want[30] < want[0]


def test_member_in_chunk_equals_member_alone(tiny):
    spec = from_dict(tiny(axes=[{"grid": {"tau": [0.5, 1.0, 2.0], "seed": [1, 2]}}], execution={}))
    p = plan(spec)
    assert len(p.chunks) == 1
    result = execute_chunk(tasks_for(p, p.chunks)[0])
    data = teacher_student(5, 2, 20, 10, seed=3)
    for member in (0, 4):
        row = p.members.loc[[member]]
        ens = lazyrich.build(lazyrich.MLP((5, 6, 1)), row[["seed", "tau", "delta", "lr"]], init="kunin")
        alone = lazyrich.train(ens, data, 30, record=[0, 10, 20, 30]).records(config=False)
        got = result.records[result.records.member == member].sort_values(["step", "observable", "layer", "index"])
        alone = alone.sort_values(["step", "observable", "layer", "index"])
        np.testing.assert_array_equal(got.observable.to_numpy(), alone.observable.astype(str).to_numpy())
        loss = got.observable.str.contains("loss").to_numpy()
        np.testing.assert_allclose(got.value[loss], alone.value[loss], rtol=1e-12, atol=0)
        # Q = AᵀA/η − WWᵀ/η cancels: batched GEMMs round differently, so compare on the Gram scale
        scale = got[got.observable == "conserved_norm"].value.max()
        np.testing.assert_allclose(got.value[~loss], alone.value[~loss], rtol=1e-12, atol=1e-14 * scale)


def test_diverged_member_is_flagged_and_others_untouched(tiny):
    axes = [{"grid": {"lr": [0.05, 400.0, 0.1]}}]
    spec = from_dict(tiny(axes=axes, execution={}))
    result = execute_chunk(tasks_for(plan(spec), plan(spec).chunks)[0])
    status = result.status.set_index("member")
    assert list(status.status) == ["ok", "diverged", "ok"]
    ens = lazyrich.build(lazyrich.MLP((5, 6, 1)), [{"tau": 1.0, "delta": 0.0, "lr": 400.0}], init="kunin")
    alone = lazyrich.train(ens, teacher_student(5, 2, 20, 10, seed=3), 30, record=[])
    assert status.diverged_step[1] == alone.diverged_step[0] > 0
    assert (status.diverged_step[[0, 2]] == -1).all()
    # the same ensemble with a calm middle member: the other two are bitwise the same
    calm = from_dict(tiny(axes=[{"grid": {"lr": [0.05, 0.07, 0.1]}}], execution={}))
    calm_records = execute_chunk(tasks_for(plan(calm), plan(calm).chunks)[0]).records
    key = ["member", "step", "observable", "layer", "index"]
    mine, theirs = (r[r.member != 1].sort_values(key) for r in (result.records, calm_records))
    assert len(mine) == 2 * 4 * 12
    np.testing.assert_array_equal(mine.value.to_numpy(), theirs.value.to_numpy())


def _flow_chunk(tiny):
    spec = from_dict(tiny(task={"name": "whitened_regression", "d": 3, "c": 2, "n": 8},
                          model={"width": 2, "activation": "linear"}, init={"kind": "lambda_balanced"},
                          flow={"times": {"linspace": [0, 1, 3]}}, steps=None, record={"log": 3},
                          axes=[{"grid": {"lam": [0.0, 0.5], "seed": [1, 2]}}], execution={}))
    p = plan(spec)
    return execute_chunk(tasks_for(p, p.chunks)[0])


def test_flow_sweep_records_times(tiny):
    result = _flow_chunk(tiny)
    loss = result.records[result.records.observable == "loss"]
    assert sorted(loss.time.unique()) == [0.0, 0.5, 1.0] and sorted(loss.step.unique()) == [0, 1, 2]
    assert result.member_steps == 4 * 3 and set(result.status.status) == {"ok"}


def test_flow_sweep_conserves_q(tiny):
    drift = _flow_chunk(tiny).records.query("observable == 'conserved_drift'").value
    assert drift.max() < 1e-10  # linear net under gradient flow: Q is exactly conserved (rtol 1e-10)


@pytest.mark.parametrize("name", ["quick", "kunin_fig1", "mup_vs_sp_width", "gamma_lr"])
def test_examples_run_two_steps(name):
    """Every ready sweep executes: one member per example, two steps, all its observables recorded."""
    import yaml
    from pathlib import Path

    data = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / f"{name}.yaml").read_text())
    data.update(steps=2, record=[0, 2])
    first = {k: [v[0] if isinstance(v, list) else v] for block in data.get("axes", []) for kind, keys in block.items()
             if kind != "random" for k, v in keys.items() if isinstance(v, list)}
    data["axes"] = [{"grid": first}] if first else []
    spec = from_dict(data)
    p = plan(spec)
    result = execute_chunk(tasks_for(p, p.chunks[:1])[0])
    assert set(result.status.status) == {"ok"} and np.isfinite(result.records.value).all()
    names = {o if isinstance(o, str) else next(iter(o)) for o in spec.observables}
    assert {"loss"} <= set(result.records.observable) and len(set(result.records.observable)) >= len(names)


def test_member_across_ensemble_sizes_and_partners(tiny):
    """Class 7, what holds exactly (docs/guarantees.md): at a fixed ensemble size a member's records
    are bitwise the same whoever its partners are; across ensemble sizes (alone included) BLAS may
    pick other kernels, so they agree to the last bits only: within 1e-14 relative, not bitwise."""
    key = ["step", "observable", "layer", "index"]

    def records_of_first(taus, deltas):
        spec = from_dict(tiny(axes=[{"zip": {"tau": taus, "delta": deltas}}], execution={}, loss_scale=1.0))
        p = plan(spec)
        r = execute_chunk(tasks_for(p, p.chunks, threads=1)[0]).records
        return r[r.member == 0].sort_values(key).value.to_numpy()

    ref = records_of_first([0.7] * 16, [0.2] + [-0.4] * 15)
    for size in (1, 2, 3, 5, 16, 40):
        partners = [0.7 + 0.1 * i for i in range(size)], [0.2] + [0.5] * (size - 1)
        other = [0.7] + [0.05 + 0.01 * i for i in range(size - 1)], [0.2] + [-0.9] * (size - 1)
        mine = records_of_first(*partners)
        np.testing.assert_array_equal(mine, records_of_first(*other))  # partners never matter, bitwise
        np.testing.assert_allclose(mine, ref, rtol=1e-14, atol=1e-14 * np.abs(ref).max())  # sizes: last bits
