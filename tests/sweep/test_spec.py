"""Sweep specs: every example validates, bad input lists one line per problem (key + fix), the CLI
exits with code 2 and writes nothing."""
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from lazyrich.errors import LazyrichError
from lazyrich.sweep import SpecError, from_dict, load_spec
from lazyrich.sweep.expr import check_expression, evaluate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_validate(path):
    from lazyrich.sweep.search_spec import is_search, load_search
    from lazyrich.sweep.yamlsafe import read_yaml

    # a search file (docs/sweeps.md, Search) validates whole, its sweep part with it
    spec = load_search(path).sweep if is_search(read_yaml(path)) else load_spec(path)
    assert spec.name and spec.observers()


def test_value_helpers_expand(tiny):
    spec = from_dict(tiny(axes=[{"grid": {"tau": {"logspace": [-1, 0.3, 17]}, "seed": {"range": [100, 116]}}},
                                {"zip": {"delta": {"linspace": [-1, 1, 3]}, "lam": {"geomspace": [1, 100, 3]}}}]))
    grid, zipped = spec.axes
    np.testing.assert_array_equal(grid.grid["tau"], np.logspace(-1, 0.3, 17))
    assert grid.grid["seed"] == list(range(100, 116))
    np.testing.assert_array_equal(zipped.zip["delta"], [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(zipped.zip["lam"], [1.0, 10.0, 100.0], rtol=1e-15)


def _problems(data) -> list[str]:
    with pytest.raises(SpecError) as info:
        from_dict(data)
    return info.value.problems


def test_every_problem_gets_one_line_naming_its_key(tiny):
    data = tiny(steps=-5, optimizer={"kind": "adamw", "lr": -1}, model={"width": 6, "activation": "relux"},
                task={"name": "teacher_student", "d": 5, "nn": 3})
    data["axes"] = [{"grid": {"tau": [0.5]}}, {"zip": {"seed": [1, 2], "task_seed": [1]}}]
    lines = _problems(data)
    keys = [line.split(":")[0] for line in lines]
    assert keys == ["task.nn", "model.activation", "optimizer.kind", "optimizer.lr", "steps", "axes[1]"]
    assert "remove it" in lines[0] and "'relu'" in lines[1] and "greater than 0" in lines[3]
    assert "seed has 2, task_seed has 1" in lines[5]


def test_semantic_problems_name_the_axis_entry(tiny):
    data = tiny(observables=["loss", "kernel_distanc", {"kernel_distance": {"weightz": "unit"}}],
                derived={"lr": "0.005 / tau**2 + os.system"})
    data["axes"] = [{"grid": {"tau": [0.5, -1.0], "colour": [1]}}, {"grid": {"width": [4, 4.5]}}]
    lines = _problems(data)
    assert lines[0].startswith("observables[1]: unknown observable 'kernel_distanc'; choose from")
    assert lines[1].startswith("observables[2].kernel_distance: bad options")
    assert lines[2] == "axes[0].grid.tau[1]: input should be greater than 0 (got -1.0)"
    assert lines[3].startswith("axes[0].grid.colour: unknown axis key; sweepable keys are task,")
    assert lines[4] == "axes[1].grid.width[1]: input should be a valid integer (got 4.5)"
    assert lines[5].startswith("derived.lr: '0.005 / tau**2 + os.system' uses Attribute")
    assert len(lines) == 6


def test_constraints_that_need_the_members(tiny):
    assert _problems(tiny(model={"width": 7})) == [
        "model.width: kunin init duplicates neurons with flipped readouts; use even widths"]
    line, = _problems(tiny(derived={"lr": "0.01 * (delta - 0.5)"}))  # lr ≤ 0 for some members
    assert line.startswith("derived.lr: '0.01 * (delta - 0.5)' gives input should be greater than 0")
    wide = tiny(task={"name": "whitened_regression", "d": 4, "c": 2}, model={"width": 3, "activation": "linear"},
                init={"kind": "lambda_balanced", "lam": 0.5}, axes=[])
    line, = _problems(wide)
    assert line.startswith("init.kind: lambda_balanced fails for width 3, lam 0.5")


def test_yaml_syntax_error_is_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\n task: [\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    line, = info.value.problems  # libyaml's wording ("... here" with the pure-Python parser)
    assert line.startswith("(yaml) line 2, column 6: mapping values are not allowed") and line.endswith("; fix the YAML syntax")
    with pytest.raises(LazyrichError, match="does not exist"):
        load_spec(tmp_path / "missing.yaml")


def test_cli_rejects_invalid_file_with_code_2_and_writes_nothing(tmp_path, monkeypatch, capsys, tiny):
    from lazyrich import cli

    bad = tiny(steps=-1)
    bad["axes"] = [{"grid": {"tau": [0.5], "colour": [1]}}]
    path, store = tmp_path / "bad.yaml", tmp_path / "runs" / "x.duckdb"
    path.write_text(yaml.safe_dump(bad))
    monkeypatch.setattr(sys, "argv", ["lazyrich", "sweep", str(path), "--store", str(store)])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: {path}: steps: input should be greater than or equal to 0 (got -1) (nothing was run)"]
    assert not store.exists() and not store.parent.exists()


def test_expressions_are_checked_and_evaluated_without_eval():
    allowed = {"tau", "delta"}
    assert check_expression("0.005 / tau**2", allowed) is None
    assert "unknown key(s) gamma" in check_expression("gamma * 2", allowed)
    assert "uses" in check_expression("__import__('os')", allowed)
    assert "cannot parse" in check_expression("tau +", allowed)
    tau = np.array([0.1, 1.0, 2.0])
    np.testing.assert_array_equal(evaluate("0.005 / tau**2", {"tau": tau}), 0.005 / tau**2)
    np.testing.assert_array_equal(evaluate("max(sqrt(tau), 1) - -delta", {"tau": tau, "delta": -tau}),
                                  np.maximum(np.sqrt(tau), 1) - tau)


def test_digest_follows_the_content(tiny):
    a, b = from_dict(tiny()), from_dict(tiny())
    assert a.digest() == b.digest()
    assert from_dict(tiny(steps=31)).digest() != a.digest()
