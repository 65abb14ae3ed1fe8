"""The reproduction framework: claims compute `passed`, controls invert, claims.json and report.html are
written, exit codes follow the claims, the CLI lists and runs reproductions."""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lazyrich.errors import LazyrichError
from lazyrich.experiments import REGISTRY, Claim, control, reproduce, reproduction
from lazyrich.experiments.base import PROVENANCE
from lazyrich.report.html import write_report

MINE = {"kunin-fig1", "spectral-width-scaling", "balance-weight-decay", "balance-warmup", "balance-deep"}
KEYS = {"id", "statement", "source", "provenance", "measured", "expected", "tolerance", "passed"}


def claim(m: float, e: float, tol: float = 0.0, comparison: str = "within", relative: bool = False) -> Claim:
    return Claim("c", "s", "src", "derived", m, e, tol, comparison, relative)  # type: ignore[arg-type]


@pytest.mark.parametrize("m,e,tol,cmp,rel,ok", [
    (1.05, 1.0, 0.1, "within", False, True), (1.2, 1.0, 0.1, "within", False, False),
    (2.05, 2.0, 0.03, "within", True, True), (2.1, 2.0, 0.03, "within", True, False),
    (0.9, 1.0, 0.0, "at_most", False, True), (1.1, 1.0, 0.0, "at_most", False, False),
    (1.1, 1.0, 0.0, "at_least", False, True), (0.95, 1.0, 0.1, "at_least", False, True),
    (0.85, 1.0, 0.1, "at_least", False, False), (math.nan, 0.0, 1e9, "within", False, False),
    (math.inf, 0.0, 0.0, "at_least", False, False),
])
def test_claim_passed_is_computed(m, e, tol, cmp, rel, ok):
    assert claim(m, e, tol, cmp, rel).passed is ok


def test_claim_rejects_bad_fields():
    with pytest.raises(LazyrichError, match="provenance"):
        Claim("c", "s", "src", "guess", 1, 1)  # type: ignore[arg-type]
    with pytest.raises(LazyrichError, match="comparison"):
        Claim("c", "s", "src", "paper", 1, 1, 0.0, "near")  # type: ignore[arg-type]
    with pytest.raises(LazyrichError, match="tolerance"):
        Claim("c", "s", "src", "paper", 1, 1, -1.0)


def test_control_passes_only_when_every_claim_fails():
    bad, good = claim(2.0, 1.0), claim(1.0, 1.0)
    assert control("k", "s", "src", [bad, bad]).passed
    c = control("k", "s", "src", [bad, good])
    assert not c.passed and c.measured == 1 and c.expected == 2
    d = c.to_dict()
    assert d["passed"] is False and [x["passed"] for x in d["details"]] == [False, True]
    with pytest.raises(LazyrichError):
        control("k", "s", "src", [])


def test_nan_measurement_serialises_as_null():
    d = claim(math.nan, 1.0).to_dict()
    assert d["measured"] is None and d["passed"] is False
    json.dumps(d, allow_nan=False)


@pytest.fixture()
def toy():
    """A tiny registered reproduction whose claim passes or fails with the size."""
    import matplotlib.pyplot as plt

    @reproduction("toy-test", "toy", quick={"x": 1.0}, full={"x": 2.0}, runtime={"quick": "0 s", "full": "0 s"}, source="t")
    def run(ctx):
        ctx.claim("x-is-one", "x equals 1", "t", "derived", ctx.cfg["x"], 1.0, 0.0)
        ctx.control("ctl", "wrong x must fail", "t", [Claim("x-is-one", "x", "t", "derived", 3.0, 1.0)])
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1])
        ctx.figure(fig, "line", "a line")
    yield "toy-test"
    REGISTRY.pop("toy-test")


def test_reproduce_writes_outputs_and_exit_codes(toy, tmp_path):
    ok = reproduce(toy, quick=True, out=tmp_path / "q")
    assert ok.exit_code == 0 and ok.failed == []
    doc = json.loads((tmp_path / "q" / "claims.json").read_text())
    assert doc["experiment"] == toy and doc["size"] == "quick"
    assert [c["id"] for c in doc["claims"]] == ["x-is-one", "ctl"]
    assert all(KEYS <= set(c) for c in doc["claims"])
    for ext in ("png", "pdf"):
        assert (tmp_path / "q" / f"line.{ext}").stat().st_size > 0
    html = (tmp_path / "q" / "report.html").read_text()
    assert "data:image/png;base64," in html and "All 2 claims passed" in html and "src=\"http" not in html
    bad = reproduce(toy, quick=False, out=tmp_path / "f")
    assert bad.exit_code == 1 and bad.failed == ["x-is-one"]
    assert json.loads((tmp_path / "f" / "claims.json").read_text())["size"] == "full"
    assert "FAILED: x-is-one" in (tmp_path / "f" / "report.html").read_text()


def test_bad_name_and_device_raise(tmp_path):
    with pytest.raises(LazyrichError, match="unknown reproduction"):
        reproduce("no-such-thing", quick=True, out=tmp_path)
    with pytest.raises(LazyrichError, match="device"):
        reproduce(next(iter(REGISTRY)), quick=True, out=tmp_path, device="tpu")


def test_registry_holds_the_implemented_reproductions():
    assert MINE <= set(REGISTRY)
    for exp in REGISTRY.values():
        assert set(exp.sizes) == {"quick", "full"} and set(exp.runtime) == {"quick", "full"} and exp.description


def test_write_report_without_claims(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2])
    png = tmp_path / "a.png"
    fig.savefig(png)
    plt.close(fig)
    path = write_report(tmp_path / "r.html", "demo", figures=[png], config={"n": 1}, runtime=1.5)
    text = path.read_text()
    assert "Claims" not in text and "data:image/png;base64," in text and "1.5 s" in text and "code version" in text
    with pytest.raises(LazyrichError, match="PNG"):
        write_report(tmp_path / "r2.html", "x", figures=[tmp_path / "r.html"])


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lazyrich.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_cli_list_and_errors(tmp_path):
    out = _cli("reproduce", "--list", cwd=tmp_path)
    assert out.returncode == 0
    for name in MINE:
        assert name in out.stdout
    assert "quick:" in out.stdout and "full:" in out.stdout
    bad = _cli("reproduce", "nope", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown reproduction" in bad.stderr and "Traceback" not in bad.stderr
    none = _cli("reproduce", cwd=tmp_path)
    assert none.returncode == 2 and "--list" in none.stderr


def test_provenance_values_match_theory_tags():
    assert PROVENANCE == ("paper", "derived", "inferred")


def test_cli_exit_codes_in_process(toy, tmp_path, monkeypatch, capsys):
    """`lazyrich reproduce NAME`: exit 0 when every claim passes, 1 when one fails (and it is named)."""
    from lazyrich import cli

    monkeypatch.setattr(sys, "argv", ["lazyrich", "reproduce", toy, "--quick", "--out", str(tmp_path / "q")])
    cli.main()  # returns normally: exit code 0
    assert "2/2 claims passed" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["lazyrich", "reproduce", toy, "--out", str(tmp_path / "f")])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 1
    err = capsys.readouterr()
    assert re.search(r"FAIL +x-is-one", err.out) and "failed: x-is-one" in err.err
