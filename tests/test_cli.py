"""The command line: inspect tables, bad input (one line, exit 2, no traceback), the demo."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lazyrich.param import layer_table

CLI = [sys.executable, "-m", "lazyrich.cli"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_inspect_json_rows_input_first():
    p = run("inspect", "--param", "mup", "--optimizer", "adam", "--widths", "10,64,64,1", "--gamma", "0.5", "--json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [r["name"] for r in rows] == ["W1", "W2", "W3"]
    assert set(rows[0]) >= {"name", "fan_in", "fan_out", "init_std", "multiplier", "lr_scale", "wd_scale", "c_init", "c_lr"}
    want = layer_table((10, 64, 64, 1), "mup", "adam", gamma=0.5).records()
    assert rows == json.loads(json.dumps(want))
    assert rows[-1]["multiplier"] == pytest.approx(2.0)  # readout multiplier 1/γ


@pytest.mark.parametrize("args,needle", [
    (["inspect", "--param", "mupp", "--widths", "10,64,1"], "'mupp' is not one of 'sp', 'ntp', 'mup', 'mf', 'spectral'"),
    (["inspect", "--widths", "10,-64,1"], "positive"),
    (["inspect", "--widths", "10,x,1"], "comma-separated integers"),
    (["inspect", "--optimizer", "lion", "--widths", "10,64,1"], "'lion' is not one of 'sgd', 'adam', 'muon'"),
    (["inspect", "--widths", "10,99999999999999999999999,1"], "in [1, 2147483647]"),
    (["inspect", "--widths", "10,64,1", "--gamma", "nan"], "not a finite number"),
    (["inspect", "--widths", "10,64,1", "--gamma", "-1"], "gamma"),
])
def test_bad_input_one_line_exit_2(args, needle):
    p = run(*args)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and needle in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_demo_quick_writes_records_and_figure(tmp_path):
    p = run("demo", "--quick", "--out", str(tmp_path / "out"))
    assert p.returncode == 0, p.stderr
    rec = pd.read_parquet(tmp_path / "out" / "records.parquet")
    assert {"member", "tau", "delta", "step", "time", "observable", "layer", "index", "value"} <= set(rec.columns)
    assert {"test_loss", "delta_k", "kernel_distance", "hamming"} <= set(rec.observable.astype(str))
    assert (tmp_path / "out" / "demo.png").stat().st_size > 10_000
    assert "records" in p.stdout and "figure" in p.stdout
    html = (tmp_path / "out" / "report.html").read_text()
    assert "data:image/png;base64" in html
