"""`lazyrich inspect-model` and `lazyrich coord-check` (in process, through the CLI's main)."""
from __future__ import annotations

import json
import sys

import pytest
from torch import nn

from lazyrich import cli
from lazyrich.usermodels import inspect

NET = """
from torch import nn

def make(width):
    return nn.Sequential(nn.Linear(6, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 3))
"""


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["lazyrich", *args])
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture()
def factory(tmp_path):
    path = tmp_path / "usernet.py"
    path.write_text(NET)
    return f"{path}:make"


def test_inspect_model_json_equals_the_api(monkeypatch, capsys, factory):
    code, out, _ = _run(monkeypatch, capsys, "inspect-model", factory, "--width", "64", "--base-width", "16",
                        "--param", "mup", "--optimizer", "adam", "--json")
    assert code == 0
    rows = json.loads(out)
    make = lambda n: nn.Sequential(nn.Linear(6, n), nn.ReLU(), nn.Linear(n, n), nn.ReLU(), nn.Linear(n, 3))  # noqa: E731
    ref = inspect(make(64), "mup", make(16), "adam")
    assert [r["role"] for r in rows] == list(ref.role) == ["input", "bias", "hidden", "bias", "output", "bias"]
    assert [r["lr_scale"] for r in rows] == list(ref.lr_scale)


def test_cli_errors_are_one_line_exit_2(monkeypatch, capsys, factory):
    code, _, err = _run(monkeypatch, capsys, "inspect-model", factory.replace(":make", ":missing"))
    assert code == 2 and err.startswith("error:") and "no callable 'missing'" in err and err.count("\n") == 1
    code, _, err = _run(monkeypatch, capsys, "inspect-model", "no_such_module_xyz:f")
    assert code == 2 and "cannot import" in err
    code, _, err = _run(monkeypatch, capsys, "coord-check", "--widths", "64")
    assert code == 2 and "at least two widths" in err


def test_coord_check_writes_records_and_figures(monkeypatch, capsys, factory, tmp_path):
    out_dir = tmp_path / "cc"
    code, out, _ = _run(monkeypatch, capsys, "coord-check", "--model", factory, "--widths", "32,64", "--steps", "1",
                        "--seeds", "1", "--out", str(out_dir))
    assert code == 0 and "mup:" in out and "sp:" in out
    assert all((out_dir / f).stat().st_size > 0 for f in ("records.csv", "slopes.csv", "update.png", "activation.png"))


def test_depth_options(monkeypatch, capsys, factory, tmp_path):
    out_dir = tmp_path / "ccd"
    code, out, _ = _run(monkeypatch, capsys, "coord-check", "--widths", "16", "--depths", "2,4", "--schemes",
                        "mup,mup+completep", "--optimizer", "adam", "--steps", "1", "--seeds", "1", "--out", str(out_dir))
    assert code == 0 and "depth slope" in out and "mup+completep:" in out and "blocks[1] (block)" in out
    assert (out_dir / "slopes_depth.csv").stat().st_size > 0 and (out_dir / "update_depth.png").stat().st_size > 0
    assert not (out_dir / "slopes.csv").exists()  # one width: no width slopes
    code, out, _ = _run(monkeypatch, capsys, "inspect-model", "lazyrich.usermodels.coord:ResMLP", "--width", "64",
                        "--depth", "8", "--base-width", "16", "--base-depth", "2", "--depth-scheme", "completep",
                        "--optimizer", "adam", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["blocks.7.fc2.weight"]["branch_depth_exp"] == -1.0 and rows["blocks.7.fc1.weight"]["branch_depth_exp"] == 0.0
    assert rows["blocks.7.fc1.weight"]["c_lr_exp"] == -1.0 and rows["out.weight"]["lr_depth_exp"] == 0.0
    for args, msg in ((["coord-check", "--depths", "2,4", "--schemes", "mup+bogus"], "unknown depth scheme"),
                      (["inspect-model", "lazyrich.usermodels.coord:ResMLP", "--width", "8", "--depth", "2",
                        "--depth-scheme", "2"], "[0, 1]"),
                      (["inspect-model", factory, "--width", "8", "--depth-scheme", "completep"], "no repeated residual blocks")):
        code, _, err = _run(monkeypatch, capsys, *args)
        assert code == 2 and msg in err and err.count("\n") <= 2, err

