"""Fuzz every command's options (Hypothesis, in process through `lazyrich.cli.main`): each invocation
either runs (tiny sizes) or exits 2 with one line `error: ...`, never a traceback or another code.

Valid values are drawn small so the cheap commands really run (inspect, predict, inspect-model,
coord-check, runs list/show/export/check, view, reproduce --list); the long ones (demo, sweep,
reproduce NAME) stop at their work function, which is replaced by one that raises `Reached`:
what is fuzzed there is the option layer (parsing, ranges, choices, paths), not the run itself.
CI budget: a few examples per command (`ci` profile); `--hypothesis-profile long` for thousands.
"""
from __future__ import annotations

import contextlib
import io
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lazyrich import cli_options as opts
from lazyrich.cli import main

SPEC = """
name: fuzz
task: {name: teacher_student, d: 3, k: 1, n: 8}
model: {width: 4, depth: 2, activation: relu}
steps: 3
record: {every: 3}
observables: [loss]
axes:
  - grid: {lr: [0.01, 0.02]}
"""
NET = "from torch import nn\n\ndef make(width):\n    return nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, 2))\n"


class Reached(Exception):
    """A long command got past its options to the work itself."""


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "spec.yaml").write_text(textwrap.dedent(SPEC))
    (root / "net.py").write_text(NET)
    (root / "junk.bin").write_bytes(b"\xff\xfe\x00not yaml")
    (root / "folder").mkdir()
    store = root / "s.duckdb"
    with contextlib.redirect_stdout(io.StringIO()):
        main(["sweep", str(root / "spec.yaml"), "--store", str(store), "--quiet"])
    return {"root": root, "spec": root / "spec.yaml", "net": root / "net.py", "junk": root / "junk.bin",
            "folder": root / "folder", "store": store, "missing": root / "missing" / "x.duckdb"}


@pytest.fixture(scope="module")
def stubs():
    """Replace the long commands' work with `Reached` for the module (monkeypatch is function-scoped)."""
    import lazyrich.demo
    import lazyrich.experiments
    import lazyrich.sweep.run

    def reached(*args, **kwargs):
        raise Reached()

    saved = [(lazyrich.demo, "run_demo"), (lazyrich.sweep.run, "run_sweep"), (lazyrich.experiments, "reproduce")]
    old = [getattr(m, n) for m, n in saved]
    for m, n in saved:
        setattr(m, n, reached)
    yield
    for (m, n), v in zip(saved, old):
        setattr(m, n, v)


def invoke(argv: list[str]) -> tuple[int, str, str, bool]:
    out, err = io.StringIO(), io.StringIO()
    code, reached = 0, False
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Reached:
            reached = True
    return code, out.getvalue(), err.getvalue(), reached


# ------------------------------------------------------------------ value strategies: (valid, invalid) text
Value = tuple[st.SearchStrategy[str], st.SearchStrategy[str]]


def ints(lo: int, hi: int) -> Value:
    return (st.integers(lo, hi).map(str),
            st.one_of(st.integers(-10**30, lo - 1), st.integers(hi + 1, 10**30),
                      st.sampled_from(["nan", "1e3", "x", "", "0x10", "1.5", "-"])).map(str))


def floats(good: tuple[float, float]) -> Value:
    return (st.floats(*good).map(repr),
            st.one_of(st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e400", "abc", ""]),
                      st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not good[0] <= x <= good[1]).map(repr)))


def choice(valid: tuple[str, ...]) -> Value:
    return st.sampled_from(valid), st.text(max_size=8).filter(lambda t: t not in valid)


def width_list(lo: int, hi: int, count: tuple[int, int]) -> Value:
    good = st.lists(st.integers(lo, hi), min_size=count[0], max_size=count[1], unique=True).map(lambda v: ",".join(map(str, v)))
    bad = st.one_of(st.lists(st.integers(-10**25, 10**25), min_size=0, max_size=70).map(lambda v: ",".join(map(str, v))),
                    st.text(max_size=12))
    return good, bad


def fixed(good: list[str], bad: list[str]) -> Value:
    return st.sampled_from(good), st.sampled_from(bad)


def options(table: dict[str, Value], flags: tuple[str, ...] = (), required: tuple[str, ...] = (),
            positional: tuple[Value, ...] = ()) -> st.SearchStrategy[list[str]]:
    """A command line from valid values (positionals and `required` options always present, the others
    drawn in or out, flags too) where, half the time, one part is replaced by an invalid value."""
    keys = list(table)

    @st.composite
    def build(draw: st.DrawFn) -> list[str]:
        chosen = [k for k in keys if k in required or draw(st.booleans())]
        parts = [("pos", v) for v in positional] + [(k, table[k]) for k in chosen]
        bad = draw(st.one_of(st.none(), st.integers(0, max(len(parts) - 1, 0)))) if parts else None
        pos, opt = [], []
        for i, (k, (good_v, bad_v)) in enumerate(parts):
            text = draw(bad_v if i == bad else good_v)
            (pos.append(text) if k == "pos" else opt.append([k, text]))
        opt += [[f] for f in flags if draw(st.booleans())]
        order = draw(st.permutations(opt))
        return pos + [x for o in order for x in o]
    return build()


def commands(w: dict[str, Path]) -> dict[str, st.SearchStrategy[list[str]]]:
    store = fixed([str(w["store"])], [str(w[n]) for n in ("folder", "missing", "junk")])
    schemes, fams = ("sp", "ntp", "mup", "mf", "spectral"), ("sgd", "adam", "muon")
    net = f"{w['net']}:make"
    return {
        "inspect": options({"--param": choice(schemes), "--optimizer": choice(fams), "--widths": width_list(1, 2048, (2, 5)),
                            "--gamma": floats((1e-3, 1e3))}, ("--bias", "--json", "--gamma-lr", "--no-gamma-lr"),
                           required=("--widths",)),
        "predict": options({"--widths": width_list(1, 512, (3, 3)), "--param": choice(schemes), "--optimizer": choice(fams),
                            "--gamma": floats((0.01, 100.0)), "--lr": floats((1e-3, 10.0)), "--std-scale": floats((0.1, 10.0)),
                            "--y-scale": floats((0.1, 10.0)), "--x-scale": floats((0.1, 10.0)),
                            "--activation": choice(opts.ACTIVATIONS)}, ("--balance", "--json"), required=("--widths",)),
        "inspect-model": options({"--param": choice(schemes), "--optimizer": choice(fams), "--width": ints(1, 16),
                                  "--gamma": floats((0.1, 10.0))}, ("--json",), required=("--width",),
                                 positional=(fixed([net], [f"{w['net']}:nope", "nope", "no_mod_xyz:f"]),)),
        "coord-check": options({"--widths": width_list(2, 8, (2, 3)), "--schemes": fixed(["sp", "mup", "sp,mup"], ["xx", "", "sp,,"]),
                                "--optimizer": choice(("sgd", "adam")), "--lr": floats((1e-4, 0.1)), "--steps": ints(1, 2),
                                "--seeds": ints(1, 2), "--out": fixed([str(w["folder"] / "cc")], [str(w["junk"])]),
                                "--model": fixed([net], ["bad", f"{w['junk']}:x"])}, ("--ladder",),
                               required=("--widths", "--steps", "--seeds", "--out")),
        "runs list": options({"--store": store}, required=("--store",)),
        "runs show": options({"--store": store}, ("--spec",), required=("--store",),
                             positional=(fixed(["latest", "fuzz"], ["nope", ""]),)),
        "runs export": options({"--store": store, "--format": choice(("parquet", "csv")),
                                "--out": fixed([str(w["root"] / "e.out")], [str(w["folder"])])},
                               required=("--store", "--out"), positional=(fixed(["latest"], ["nope"]),)),
        "runs check": options({}, positional=(store,)),
        "view": options({"--out": fixed([str(w["root"] / "v.html")], [str(w["folder"])]),
                         "--observable": fixed(["loss"], ["nope"])}, required=("--out",),
                        positional=(store, fixed(["latest", "fuzz"], ["nope"]))),
        "reproduce": options({"--device": fixed(["cpu"], ["tpu", "cuda:0", "", "GPU"]),
                              "--out": fixed([str(w["folder"])], [str(w["junk"])])}, ("--quick",),
                             positional=(fixed(["kunin-fig1", "--list"], ["nope"]),)),
        "sweep": options({"--store": fixed([str(w["root"] / "new.duckdb")], [str(w["folder"])]),
                          "--backend": choice(("local", "dask")), "--workers": ints(1, 4), "--threads": ints(1, 4),
                          "--device": fixed(["cpu", "cuda", "cuda:1"], ["tpu", "gpu0", "", "cuda:x"])},
                         ("--resume", "--quiet"), positional=(fixed([str(w["spec"])], [str(w[n]) for n in ("folder", "missing")]),)),
        "demo": options({"--out": fixed([str(w["folder"] / "demo")], [str(w["junk"])])}, ("--quick",)),
    }


@pytest.mark.parametrize("command", ["inspect", "predict", "inspect-model", "coord-check", "runs list", "runs show",
                                     "runs export", "runs check", "view", "reproduce", "sweep", "demo"])
def test_every_option_runs_or_exits_2_in_one_line(command, world, stubs):
    strategy = commands(world)[command]
    seen: set[str] = set()

    @settings(max_examples=12 if command != "coord-check" else 3, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(strategy)
    def check(args: list[str]) -> None:
        argv = [*command.split(), *args]
        code, out, err, reached = invoke(argv)
        assert "Traceback" not in out + err, (argv, err)
        seen.add("ran" if reached or code == 0 else "refused")
        if reached:
            return
        assert code in (0, 2), (argv, code, err)
        if code == 2:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) <= 420, (argv, err)

    check()
    assert seen == {"ran", "refused"}, seen  # the examples reached both outcomes


def test_option_choices_match_the_library():
    from lazyrich.models.activations import NAMES
    from lazyrich.param import OPTIMIZERS, SCHEMES

    assert opts.SCHEMES == SCHEMES and set(opts.ACTIVATIONS) == set(NAMES)
    assert opts.Family.__args__ == OPTIMIZERS and opts.Scheme.__args__ == SCHEMES  # type: ignore[attr-defined]


@pytest.mark.parametrize("argv,needle", [
    (["coord-check", "--widths", "64,99999"], "in [1, 4096]"),
    (["coord-check", "--steps", "0"], "--steps"),
    (["coord-check", "--seeds", "100000"], "--seeds"),
    (["coord-check", "--lr", "nan"], "not a finite number"),
    (["inspect", "--widths", "10,184467440737095516160,1"], "in [1, 2147483647]"),
    (["sweep", "x.yaml", "--device", "tpu"], "'tpu' is not a device"),
    (["reproduce", "kunin-fig1", "--device", "gpu"], "'gpu' is not one of 'cpu', 'cuda'"),
    (["predict", "--widths", "10,64"], "exactly three widths"),
])
def test_named_cases(argv, needle, world):
    if argv[0] == "sweep":
        argv = ["sweep", str(world["spec"]), *argv[2:]]
    code, _, err, _ = invoke(argv)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_export_to_a_folder_is_refused(world):
    code, _, err, _ = invoke(["runs", "export", "latest", "--store", str(world["store"]), "--out", str(world["folder"])])
    assert code == 2 and "is a directory" in err
