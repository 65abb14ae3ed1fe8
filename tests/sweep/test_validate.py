"""Issue 21, classes 3-5: sizes refused from arithmetic before any expansion or allocation, with the
memory estimate in the message; non-finite, out-of-range, empty and reversed values refused; bad
files, expressions and alias bombs give one short line. Each case here ran, crashed or hung before."""
import math

import numpy as np
import pytest
import yaml

from lazyrich.sweep import SpecError, expand, from_dict, load_spec
from lazyrich.sweep import limits
from lazyrich.sweep import planner as planner_module
from lazyrich.sweep.limits import MAX_MESSAGE
from lazyrich.sweep.validate import validate_spec


def _refused(data) -> str:
    with pytest.raises(SpecError) as info:
        from_dict(data)
    msg = str(info.value)
    assert "\n" not in msg and len(msg) <= MAX_MESSAGE, msg
    return msg


@pytest.fixture
def no_expansion(monkeypatch):
    """Fail the test if the members table or any axis' values are made: size checks must be arithmetic."""
    def boom(*args, **kwargs):
        raise AssertionError("values were made before the sizes were checked")
    monkeypatch.setattr(planner_module, "expand", boom)
    for fn in ("linspace", "logspace", "geomspace"):
        monkeypatch.setattr(np, fn, boom)


HUGE = {  # what the spec asks for → the key the one-line refusal must name
    "linspace": ({"axes": [{"grid": {"tau": {"linspace": [0.1, 1, 10**12]}}}]}, "axes[0].grid.tau"),
    "logspace": ({"axes": [{"zip": {"tau": {"logspace": [-1, 1, 1e11]}}}]}, "axes[0].zip.tau"),
    "range": ({"axes": [{"grid": {"seed": {"range": [0, 10**12]}}}]}, "axes[0].grid.seed"),
    "random": ({"axes": [{"random": {"n": 10**12, "dists": {"tau": {"uniform": [0.1, 1]}}}}]}, "axes[0].random.n"),
    "product": ({"axes": [{"grid": {"tau": {"linspace": [0.1, 1, 10**4]}, "seed": {"range": [0, 10**4]}}},
                          {"grid": {"delta": {"linspace": [-1, 1, 10**4]}}}]}, "axes[0].grid:"),
    "width": ({"model": {"width": 2 * 10**9}}, "model.width"),
    "width_axis": ({"axes": [{"grid": {"width": [4, 10**9]}}]}, "axes[0].grid.width"),
    "samples": ({"task": {"name": "teacher_student", "d": 5, "n": 10**10}}, "task.n"),
    "dimension": ({"task": {"name": "teacher_student", "d": 10**9}}, "task.d"),
    "depth": ({"model": {"width": 6, "depth": 10**7}}, "model.depth"),
    "steps": ({"steps": 10**13}, "steps"),
    "record_every": ({"steps": 10**9, "record": {"every": 1}}, "record"),
    "record_log": ({"record": {"log": 10**10}}, "record.log"),
    "warmup": ({"schedule": {"warmup": 10**15}}, "schedule.warmup"),
}


@pytest.mark.parametrize("case", HUGE, ids=list(HUGE))
def test_huge_sizes_are_refused_before_expansion(case, tiny, no_expansion):
    change, key = HUGE[case]
    msg = _refused(tiny(**change))
    assert f": {key}" in msg or msg.startswith(f"sweep spec: {key}"), msg


def test_memory_estimate_in_the_message_matches_an_independent_count(tiny, monkeypatch):
    """One member of width w on teacher_student(d, k, n, n_test), gd, loss+conserved, 4 recorded points:
    the refusal quotes the working set written out from the memory model, against the available memory."""
    w, d, k, n, n_test, points = 200_000, 5, 2, 20, 10, 4
    params, units = d * w + w, w + 1
    member = 8 * (4 * params + 6 * n * units + 2 * n_test * units)  # 4 slots: params, grads, two buffers
    records = points * 2 * (8 * 3 + 2 * w) * limits.RECORD_ROW_BYTES  # ≤ 8 per layer + 1 per unit, 2 observables
    shared = 8 * (n + n_test) * (d + 1) + 8 * k * (d + n + n_test + 1)  # data and the teacher
    peak = 4 * limits.PLAN_BYTES_PER_MEMBER + shared + member + records
    data = tiny(model={"width": w}, execution={"chunk_members": 1})
    monkeypatch.setattr(limits, "available_bytes", lambda: peak - 1)
    msg = _refused(data)
    assert msg.startswith(f"sweep spec: model.width: the sweep needs ~{limits.human(peak)} of memory")
    assert f"more than the {limits.human(peak - 1)} available; use a smaller value" in msg
    monkeypatch.setattr(limits, "available_bytes", lambda: peak + 1)
    from_dict(data)  # the same spec fits one byte more


def test_many_members_are_refused_for_their_table_and_chunks_for_memory_mb(tiny, monkeypatch, no_expansion):
    monkeypatch.setattr(limits, "available_bytes", lambda: 10**9)
    msg = _refused(tiny(axes=[{"grid": {"seed": {"range": [0, 2 * 10**6]}}}]))
    assert msg.startswith("sweep spec: axes: the sweep needs ~1.9 GB of memory (1.9 GB to plan 2e+06 members")


def test_record_volume_is_bounded(tiny, monkeypatch):
    """2·10⁴ members × 10⁶ recorded steps × (loss: 2 + conserved: 4 + width·(depth−1) ≤ 36 values)."""
    monkeypatch.setattr(limits, "available_bytes", lambda: 2**60)
    data = tiny(steps=10**6 - 1, record={"every": 1}, axes=[{"grid": {"seed": {"range": [0, 20_000]}}}])
    rows = 20_000 * 10**6 * 2 * (8 * 3 + 2 * 6)
    assert _refused(data).startswith(f"sweep spec: record: the run would write ~{rows:.3g} record rows (20000 members "
                                     "× 1000000 points")


def test_a_chunk_budget_above_the_machine_is_refused(tiny, monkeypatch):
    monkeypatch.setattr(limits, "available_bytes", lambda: 50 * 2**20)
    data = tiny(model={"width": 2000}, axes=[{"grid": {"seed": {"range": [0, 40]}}}], execution={"memory_mb": 10**6})
    msg = _refused(data)
    assert msg.startswith("sweep spec: execution.memory_mb: the sweep needs") and "lower execution.memory_mb" in msg
    from_dict({**data, "execution": {"memory_mb": 4}})  # 4 MB chunks fit


@pytest.mark.parametrize("change, key", [
    ({"optimizer": {"kind": "gd", "lr": math.nan}}, "optimizer.lr"),
    ({"optimizer": {"kind": "adam", "betas": [0.9, math.inf]}}, "optimizer.betas[1]"),
    ({"optimizer": {"kind": "adam", "betas": [1.0, 0.999]}}, "optimizer.betas[0]"),
    ({"optimizer": {"kind": "adam", "betas": [-0.1, 0.999]}}, "optimizer.betas[0]"),
    ({"optimizer": {"kind": "adam", "eps": -math.inf}}, "optimizer.eps"),
    ({"init": {"kind": "kunin", "tau": math.inf}}, "init.tau"),
    ({"init": {"kind": "kunin", "delta": math.nan}}, "init.delta"),
    ({"parametrization": {"gamma": math.inf}}, "parametrization.gamma"),
    ({"loss_scale": math.nan}, "loss_scale"),
    ({"execution": {"memory_mb": math.inf}}, "execution.memory_mb"),
    ({"schedule": {"decay": "step", "step_factor": math.inf}}, "schedule.step_factor"),
    ({"axes": [{"grid": {"delta": [0.0, math.nan]}}]}, "axes[0].grid.delta[1]"),
    ({"axes": [{"random": {"n": 2, "dists": {"delta": {"uniform": [-math.inf, 1]}}}}]}, "axes[0].random.dists.delta"),
    ({"axes": [{"grid": {}}]}, "axes[0].grid: empty"),
    ({"axes": [{"zip": {}}]}, "axes[0].zip: empty"),
    ({"axes": [{"grid": {"seed": {"range": [5, 0]}}}]}, "axes[0].grid.seed: range [5, 0] is empty"),
    ({"axes": [{"random": {"n": 2, "dists": {"seed": {"integers": [5, 2]}}}}]}, "axes[0].random.dists.seed.integers"),
    ({"axes": [{"random": {"n": 2, "dists": {"tau": {"uniform": [2, 1]}}}}]}, "axes[0].random.dists.tau.uniform"),
    ({"seed": 2**63}, "seed: input should be less than or equal to 9223372036854775807"),
    ({"axes": [{"grid": {"seed": [0, 2**64]}}]}, "axes[0].grid.seed[1]"),
    ({"derived": {"seed": "tau * 1e30"}}, "derived.seed"),
])
def test_invalid_values_are_refused_naming_the_key(change, key, tiny):
    assert f": {key}" in _refused(tiny(**change))


def test_values_checked_at_run_time_before_are_refused_up_front(tiny):
    """These raised inside the first chunk, after the run had started."""
    assert ": optimizer.batch_size: 50 exceeds the 20 training samples of task" in _refused(
        tiny(optimizer={"kind": "sgd", "batch_size": 50}))
    assert ": parametrization.overrides: override for unknown tensor 'hidden'" in _refused(
        tiny(parametrization={"overrides": {"hidden": {"lr_scale": 2.0}}}))
    assert ": parametrization.overrides: override key 'lr'" in _refused(
        tiny(parametrization={"overrides": {"W1": {"lr": 2.0}}}))
    from_dict(tiny(parametrization={"overrides": {"W1": {"lr_scale": 2.0}}}))


def test_seeds_up_to_int64_are_kept_exactly(tiny):
    top = 2**63 - 1
    members = expand(from_dict(tiny(axes=[{"grid": {"seed": [top, top - 1], "task_seed": [2**53 + 1]}}])))
    assert members.seed.tolist() == [top, top - 1] and members.task_seed.tolist() == [2**53 + 1] * 2


def test_uniform_between_zero_and_negative_zero_expands(tiny):
    """Found by the long fuzz profile: numpy refuses uniform(0.0, -0.0) although lo ≤ hi."""
    members = expand(from_dict(tiny(axes=[{"random": {"n": 3, "dists": {"delta": {"uniform": [0.0, -0.0]}}}}])))
    assert members.delta.tolist() == [0.0, 0.0, 0.0]


def test_flow_times_and_solver_are_checked(tiny):
    base = dict(steps=None, init={"kind": "gaussian"}, axes=[])
    assert ": flow.times:" in _refused(tiny(flow={"times": [0, 1, math.inf]}, **base))
    assert ": flow.method: unknown solver 'rk99'" in _refused(tiny(flow={"times": [0, 1], "method": "rk99"}, **base))


@pytest.mark.parametrize("text, what", [
    ("sqrt(tau, 2)", "sqrt() with 2 argument(s) (sqrt takes 1)"),
    ("min(tau)", "min() with 1 argument(s) (min takes 2)"),
    ("max(tau, delta, lam)", "max() with 3 argument(s) (max takes 2)"),
    ("exp(*tau)", "exp() with 1 argument(s)"),
    ("1" + "0" * 400 + " * tau", "an integer beyond float64"),
    ("tau + speed", "unknown key(s) speed"),
    ("(" * 240 + "tau" + ")" * 240, "cannot parse"),
])
def test_expressions_are_checked_for_arity_and_names(text, what, tiny):
    msg = _refused(tiny(derived={"lr": text}))
    assert ": derived.lr: " in msg and what in msg


def test_non_utf8_file_is_one_line(tmp_path, tiny):
    path = tmp_path / "latin1.yaml"
    raw = yaml.safe_dump(tiny(description="caf\u00e9"), allow_unicode=True).encode("latin-1")
    path.write_bytes(raw)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == (f"{path}: (file): not UTF-8 text (byte 0xe9 at offset {raw.index(bytes([0xe9]))}); "
                               "save the file as UTF-8 (nothing was run)")


def test_alias_bomb_and_recursive_alias_are_refused_short(tmp_path, tiny):
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]  # 10⁹ leaves
    body = yaml.safe_dump(tiny(observables=["loss"])).replace("- loss", "- kernel_distance: {weights: *a8}")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("x-anchors:\n" + "\n".join("  " + line for line in lines) + "\n" + body)
    with pytest.raises(SpecError) as info:
        load_spec(bomb)
    msg = str(info.value)
    sizes = [11]  # nodes of a0 expanded; a_i holds 10 copies of a_(i-1)
    for _ in range(8):
        sizes.append(1 + 10 * sizes[-1])
    assert f"(yaml): its aliases expand to {sum(sizes) + sizes[-1]:.3g} nodes (> 1e+06)" in msg, msg
    assert len(msg) <= MAX_MESSAGE
    loop = tmp_path / "loop.yaml"
    loop.write_text("name: &n [*n]\n")
    with pytest.raises(SpecError, match=r"\(yaml\): a recursive alias"):
        load_spec(loop)


def test_small_aliases_still_load(tmp_path, tiny):
    path = tmp_path / "anchors.yaml"
    path.write_text(yaml.safe_dump(tiny()).replace("delta:\n", "delta: &d\n") + "derived: {}\n")
    assert load_spec(path).name == "tiny"


def test_yaml_values_that_cannot_be_built_are_one_line(tmp_path):
    path = tmp_path / "digits.yaml"
    path.write_text("name: x\nseed: " + "9" * 5000 + "\n")
    with pytest.raises(SpecError, match=r"\(yaml\): cannot build a value"):
        load_spec(path)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * limits.MAX_FILE_BYTES)
    with pytest.raises(SpecError, match=r"\(file\): larger than 8 MiB"):
        load_spec(big)


def test_long_values_are_elided_in_one_line(tiny):
    msg = _refused(tiny(name="x" * 10**5, model={"width": 6, "activation": "é\n" * 10**5}))
    assert msg.count("…") >= 1 and len(msg) <= MAX_MESSAGE


def test_validate_spec_refuses_a_python_spec_that_pydantic_accepts(tiny):
    from lazyrich.sweep import SweepSpec
    spec = SweepSpec.model_validate(tiny(model={"width": 7}))  # kunin needs even widths
    with pytest.raises(SpecError, match="model.width: kunin init duplicates neurons"):
        validate_spec(spec)


def test_limits_agree_with_the_planner():
    assert limits.MAX_MEMBERS == planner_module.MAX_MEMBERS
