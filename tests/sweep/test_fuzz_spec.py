"""Fuzzing sweep files through the real command line (`lazyrich sweep FILE --store S`, in process):
valid specs at a tiny size run and store exactly the members their axes describe; mutated ones
(wrong types, out-of-range and non-finite numbers, unknown names, huge sizes, broken YAML,
aliases, bad bytes) exit with code 2 and one line naming the field — no traceback, no store file.

CI runs a fixed, derandomized number of examples (the "ci" profile of tests/conftest.py, ~300 in
all, ~35 s on one core); HYPOTHESIS_PROFILE=long runs 5000 per test, 300 full sweeps (docs/sweeps.md)."""
import contextlib
import io
import math
import os
import sys
import tempfile
from pathlib import Path
from unittest import mock

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lazyrich import cli
from lazyrich.models.activations import NAMES as ACTIVATIONS
from lazyrich.param.schemes import SCHEMES
from lazyrich.sweep import expand, from_dict, limits
from lazyrich.sweep.spec import OPTIMIZER_KINDS

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
MEMORY = 8 * 2**30  # the machine the estimates are checked against: 8 GB available, on any host


def examples(ci: int, long: int | None = None) -> settings:
    """`ci` examples by default; the long profile's count (or `long`, for tests that run sweeps)."""
    return settings(max_examples=(long or settings.default.max_examples) if LONG else ci)


# ---------------------------------------------------------------- valid tiny specs

_AXIS_VALUES = {
    "tau": st.floats(0.1, 2.0), "delta": st.floats(-1.0, 1.0), "lam": st.floats(-1.0, 1.0),
    "gamma": st.floats(0.5, 2.0), "std_scale": st.floats(0.0, 2.0), "lr": st.floats(1e-3, 0.1),
    "seed": st.integers(0, 2**63 - 1), "task_seed": st.integers(0, 2**63 - 1),
}


@st.composite
def axis_blocks(draw, keys: list[str]) -> tuple[dict, int]:
    """One axes entry over `keys` and the number of members it gives."""
    kind = draw(st.sampled_from(["grid", "zip", "random", "linspace"]))
    if kind == "random":
        n = draw(st.integers(1, 2))
        dists = {k: ({"integers": [0, 10**12]} if k.endswith("seed") else {"uniform": sorted([draw(_AXIS_VALUES[k]),
                 draw(_AXIS_VALUES[k])])}) for k in keys}
        return {"random": {"n": n, "seed": draw(st.integers(0, 2**63 - 1)), "dists": dists}}, n
    if kind == "linspace" and not any(k.endswith("seed") for k in keys):
        k = draw(st.integers(1, 2))
        return {"grid": {key: {"linspace": [draw(_AXIS_VALUES[key]), draw(_AXIS_VALUES[key]), k]} for key in keys}}, k ** len(keys)
    if kind == "zip":
        n = draw(st.integers(1, 2))
        return {"zip": {k: draw(st.lists(_AXIS_VALUES[k], min_size=n, max_size=n)) for k in keys}}, n
    values = {k: draw(st.lists(_AXIS_VALUES[k], min_size=1, max_size=2)) for k in keys}
    return {"grid": values}, math.prod(len(v) for v in values.values())


@st.composite
def tiny_specs(draw) -> tuple[dict, int]:
    """A valid sweep of at most 8 members of width ≤ 6, ≤ 3 steps, and how many members it has."""
    init = draw(st.sampled_from(["gaussian", "kunin"]))
    depth = 2 if init == "kunin" else draw(st.integers(1, 3))
    width = 2 * draw(st.integers(1, 3)) if init == "kunin" else draw(st.integers(1, 5))
    task = draw(st.one_of(
        st.fixed_dictionaries({"name": st.just("teacher_student"), "d": st.integers(1, 4), "k": st.integers(1, 3),
                               "n": st.integers(1, 8), "n_test": st.integers(0, 4), "seed": st.integers(0, 2**63 - 1)}),
        st.fixed_dictionaries({"name": st.just("whitened_regression"), "d": st.integers(1, 3), "c": st.integers(1, 2),
                               "seed": st.integers(0, 2**63 - 1)})))
    optimizer = {"kind": draw(st.sampled_from(OPTIMIZER_KINDS)), "lr": draw(st.floats(1e-3, 0.1))}
    if optimizer["kind"] == "adam":
        optimizer["betas"] = [draw(st.floats(0.0, 0.99)), draw(st.floats(0.0, 0.999))]
    derived = draw(st.sampled_from([{}, {"lr": "0.01 * sqrt(tau)"}, {"lr": "max(0.001, 0.05 / (1 + abs(delta)))"}]))
    pool = [k for k in _AXIS_VALUES if k not in derived]
    swept = draw(st.lists(st.sampled_from(pool), max_size=3, unique=True))
    split = draw(st.integers(0, len(swept)))
    blocks = [draw(axis_blocks(keys)) for keys in (swept[:split], swept[split:]) if keys]
    spec = {
        "name": "fuzz", "task": task,
        "model": {"width": width, "depth": depth, "activation": draw(st.sampled_from(ACTIVATIONS)),
                  "bias": False if init == "kunin" else draw(st.booleans())},
        "parametrization": {"scheme": draw(st.sampled_from(SCHEMES)), "gamma": draw(st.floats(0.5, 2.0))},
        "init": {"kind": init}, "optimizer": optimizer, "steps": (steps := draw(st.integers(0, 3))),
        "record": draw(st.one_of(st.just({"every": 1}), st.builds(lambda n: {"log": n}, st.integers(1, 4)),
                                 st.lists(st.integers(0, steps), min_size=1, max_size=3))),
        "observables": draw(st.lists(st.sampled_from(["loss", "conserved", "param_distance", "weight_change"]),
                                     min_size=1, max_size=2, unique=True)),
        "seed": draw(st.integers(0, 2**63 - 1)), "axes": [b for b, _ in blocks], "derived": derived,
        "execution": {"chunk_members": draw(st.integers(1, 4))},
    }
    return spec, math.prod(n for _, n in blocks)


# ---------------------------------------------------------------- the command line, in process

def _sweep(text: str | bytes) -> tuple[int, str, str, bool]:
    """Run `lazyrich sweep` on a file holding `text`: (exit code, stdout, stderr, store written)."""
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(limits, "available_bytes", lambda: MEMORY):
        path, store = Path(tmp) / "fuzz.yaml", Path(tmp) / "runs" / "s.duckdb"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        out, err = io.StringIO(), io.StringIO()
        argv = ["lazyrich", "sweep", str(path), "--store", str(store), "--quiet"]
        with mock.patch.object(sys, "argv", argv), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:  # anything but SystemExit escaping here is a traceback: the test fails with it
                cli.main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        written = store.exists() or store.parent.exists()
        return code, out.getvalue(), err.getvalue().replace(str(path), "FILE"), written


def _assert_refused(code: int, out: str, err: str, written: bool, key: str | None = None) -> None:
    lines = err.splitlines()
    assert code == 2 and out == "" and not written, (code, out, err, written)
    assert len(lines) == 1 and lines[0].startswith("error: FILE: "), err
    assert len(lines[0]) <= len("error: ") + limits.MAX_MESSAGE and "Traceback" not in err, err
    assert ": " in lines[0][len("error: FILE: "):], err  # "key: what is wrong; the fix"
    if key is not None:
        assert key in lines[0], (key, err)


def _dump(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@examples(8, long=300)
@given(tiny_specs())
def test_valid_tiny_specs_run_and_store_their_members(case):
    data, members = case
    code, out, err, written = _sweep(_dump(data))
    assert code == 0 and err == "" and written, (code, out, err)
    assert f": {members} members in " in out.splitlines()[0], out


@examples(80)
@given(tiny_specs())
def test_sizes_from_arithmetic_match_the_expansion(case):
    """The limits are checked on counts computed without expanding: they must equal what expands."""
    data, members = case
    spec = from_dict(data)
    assert limits.member_count(spec) == members == len(expand(spec))
    assert limits.record_point_count(spec) == len(spec.record_points())


# ---------------------------------------------------------------- mutations with a known field

_NOT_NUMBERS = st.sampled_from(["abc", [1, 2], {"a": 1}, None])
_NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
_FLOATS = {  # path → values that must be refused there
    ("optimizer", "lr"): st.one_of(st.floats(max_value=0.0), _NON_FINITE, _NOT_NUMBERS),
    ("init", "tau"): st.one_of(st.floats(max_value=0.0), _NON_FINITE, _NOT_NUMBERS),
    ("init", "delta"): st.one_of(_NON_FINITE, _NOT_NUMBERS),
    ("init", "std_scale"): st.one_of(st.floats(max_value=-1e-9), _NON_FINITE),
    ("parametrization", "gamma"): st.one_of(st.floats(max_value=0.0), _NON_FINITE, _NOT_NUMBERS),
    ("loss_scale",): st.one_of(st.floats(max_value=0.0), _NON_FINITE),
    ("execution", "memory_mb"): st.one_of(st.floats(max_value=0.0), _NON_FINITE),
    ("optimizer", "momentum"): st.one_of(st.floats(1.0, 1e300), st.floats(max_value=-1e-9), _NON_FINITE),
    ("optimizer", "betas", 0): st.one_of(st.floats(1.0, 1e300), st.floats(max_value=-1e-9), _NON_FINITE),
    ("optimizer", "betas", 1): st.one_of(st.floats(1.0, 1e300), st.floats(max_value=-1e-9), _NON_FINITE),
    ("optimizer", "eps"): st.one_of(st.floats(max_value=0.0), _NON_FINITE),
    ("schedule", "step_factor"): st.one_of(st.floats(max_value=0.0), _NON_FINITE),
}
_BAD_INTS = st.one_of(st.sampled_from([1.5, -0.5, math.nan, "7 layers"]), _NOT_NUMBERS)
_INTS = {
    ("model", "width"): st.one_of(st.integers(max_value=0), st.integers(2**31, 2**200), _BAD_INTS),
    ("model", "depth"): st.one_of(st.integers(max_value=0), st.integers(1001, 2**200), _BAD_INTS),
    ("task", "d"): st.one_of(st.integers(max_value=0), st.integers(2**31, 2**100), _BAD_INTS),
    ("task", "n"): st.one_of(st.integers(max_value=0), st.integers(2**31, 2**100), _BAD_INTS),
    ("steps",): st.one_of(st.integers(max_value=-1), st.integers(10**9 + 1, 2**100), _BAD_INTS),
    ("seed",): st.one_of(st.integers(max_value=-1), st.integers(2**63, 2**200), _BAD_INTS),
    ("task", "seed"): st.one_of(st.integers(max_value=-1), st.integers(2**63, 2**200), _BAD_INTS),
    ("execution", "chunk_members"): st.one_of(st.integers(max_value=0), _BAD_INTS),
    ("schedule", "warmup"): st.one_of(st.integers(max_value=-1), st.integers(10**9 + 1, 2**100), _BAD_INTS),
}
_NAMES = {  # a misspelt name → where it is reported
    ("model", "activation"): "model.activation", ("parametrization", "scheme"): "parametrization.scheme",
    ("optimizer", "kind"): "optimizer.kind", ("init", "kind"): "init.kind", ("dtype",): "dtype",
}


def _set(data: dict, path: tuple, value) -> dict:
    node = data
    for part in path[:-1]:
        if isinstance(node, dict) and part not in node:
            node[part] = {} if not isinstance(path[path.index(part) + 1], int) else [0.9, 0.999]
        node = node[part]
    node[path[-1]] = value
    return data


def _key(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else ("." if i else "") + p for i, p in enumerate(path))


@st.composite
def mutations(draw, data: dict) -> tuple[dict, str]:
    """`data` with one thing wrong, and the key the refusal must name."""
    kind = draw(st.sampled_from(["float", "int", "name", "unknown_key", "observable", "axis", "derived", "huge"]))
    if kind == "float":
        path = draw(st.sampled_from(sorted(_FLOATS)))
        return _set(data, path, draw(_FLOATS[path])), _key(path)
    if kind == "int":
        path = draw(st.sampled_from(sorted(_INTS)))
        return _set(data, path, draw(_INTS[path])), _key(path)
    if kind == "name":
        path = draw(st.sampled_from(sorted(_NAMES)))
        return _set(data, path, draw(st.sampled_from(["relux", "adamw", "float16", "", "kunim", "ÿ" * 500]))), _NAMES[path]
    if kind == "unknown_key":
        section = draw(st.sampled_from([None, "model", "optimizer", "init", "execution"]))
        name = draw(st.sampled_from(["widht", "stepz", "lr_", "x" * 300]))
        (data if section is None else data.setdefault(section, {}))[name] = 1
        return data, name[:15] if section is None else f"{section}.{name[:15]}"
    if kind == "observable":
        data["observables"] = [*data["observables"], draw(st.sampled_from(["kernel_distanc", "Loss", "loss2"]))]
        return data, f"observables[{len(data['observables']) - 1}]"
    if kind == "axis":
        bad = draw(st.sampled_from([{"grid": {"colour": [1]}}, {"grid": {}}, {"zip": {"tau": [1.0], "delta": [1.0, 2.0]}},
                                    {"grid": {"tau": {"range": [5, 1]}}}, {"grid": {"tau": [0.5, -1.0]}},
                                    {"grid": {"delta": [0.0, math.nan]}}, {"random": {"n": 0, "dists": {"tau": {"uniform": [1, 2]}}}},
                                    {"random": {"n": 2, "dists": {"seed": {"integers": [9, 3]}}}}]))
        data["axes"] = [*data["axes"], bad]
        return data, f"axes[{len(data['axes']) - 1}]"
    if kind == "derived":
        key = draw(st.sampled_from(["tau", "delta"]))
        text = draw(st.sampled_from(["sqrt(tau, 2)", "min(tau)", "speed * 2", "tau +", "__import__('os')", "exp(1e9)"]))
        data["axes"] = [a for a in data["axes"] if key not in next(iter(a.values())).get("dists", next(iter(a.values())))]
        data["derived"] = {key: text}
        return data, f"derived.{key}"
    huge = draw(st.sampled_from(["linspace", "range", "random", "product", "width", "samples", "record", "log"]))
    big = draw(st.integers(10**7 + 1, 10**15))
    data["axes"] = [a for a in data["axes"] if "random" not in a]
    if huge == "linspace":
        data["axes"] = [*data["axes"], {"grid": {"std_scale": {"linspace": [0, 1, big]}}}]
    elif huge == "range":
        data["axes"] = [*data["axes"], {"grid": {"std_scale": {"range": [0, big]}}}]
    elif huge == "random":
        data["axes"] = [*data["axes"], {"random": {"n": big, "dists": {"std_scale": {"uniform": [0, 1]}}}}]
    elif huge == "product":
        k = math.isqrt(big) + 1
        data["axes"] = [{"grid": {"std_scale": {"linspace": [0, 1, k]}}}, {"grid": {"lam": {"linspace": [0, 1, k]}}}]
        return data, "axes"
    elif huge == "width":
        return _set(data, ("model", "width"), draw(st.integers(10**9, 2**31 - 1)) // 2 * 2), "model.width"
    elif huge == "samples":
        return _set(data, ("task", "n"), draw(st.integers(10**9, 2**31 - 1))), "task.n"
    elif huge == "record":
        data.update(steps=draw(st.integers(10**6 + 1, 10**9)), record={"every": 1})
        return data, "record"
    else:
        return _set(data, ("record",), {"log": big}), "record.log"
    return data, f"axes[{len(data['axes']) - 1}]"


@examples(150)
@given(st.data())
def test_mutated_specs_exit_2_with_one_line_naming_the_field(data):
    spec, _ = data.draw(tiny_specs())
    bad, key = data.draw(mutations(spec))
    _assert_refused(*_sweep(_dump(bad)), key=key)


# ---------------------------------------------------------------- broken files

_BOMB = "\n".join(["x: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
                  + [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]) + "\n"


@st.composite
def broken_files(draw) -> tuple[str | bytes, str | None]:
    """The text of a sweep file broken at the YAML or byte level, and what the refusal names (None:
    it may still be a valid tiny sweep, which then runs)."""
    text = _dump(draw(tiny_specs())[0])
    kind = draw(st.sampled_from(["truncate", "insert", "bomb", "recursive", "bytes", "not_mapping", "deep"]))
    at = draw(st.integers(0, len(text)))
    if kind == "truncate":
        return text[:at], None
    if kind == "insert":
        return text[:at] + draw(st.sampled_from([":", "[", "]", "{", "}", "&", "*x", "!", "\t", "%", "@", "`", ": -", "'"])) + text[at:], None
    if kind == "bomb":
        return _BOMB + text.replace("observables:\n", "observables:\n- kernel_distance: {weights: *a7}\n"), "(yaml)"
    if kind == "recursive":
        return text.replace("name: fuzz", "name: &n [*n]"), "(yaml)"
    if kind == "bytes":
        raw = text.encode()
        return raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xe9", b"\x80\x80"])) + raw[at:], "(file)"
    if kind == "not_mapping":
        return draw(st.sampled_from(["- 1\n- 2\n", "42\n", "", "~\n", "'a string'\n"])), "(top level)"
    return "a: " + "[" * draw(st.integers(1001, 5000)) + "\n", "(yaml)"


@examples(60)
@given(broken_files())
def test_broken_files_run_or_exit_2_with_one_line(case):
    text, key = case
    code, out, err, written = _sweep(text)
    if code == 0:  # a truncation or insertion that left a valid tiny sweep
        assert key is None and err == "" and written and " members in " in out, (code, out, err)
    else:
        _assert_refused(code, out, err, written, key)


# ---------------------------------------------------------------- search sections (sweep/search.py)

_VALID_SEARCH = {"space": {"lr": {"loguniform": [1e-3, 1.0]}}, "objectives": ["loss", "cost"],
                 "budget": {"batches": 1, "batch_size": 2}}


@st.composite
def search_mutations(draw) -> tuple[dict, str]:
    """A search section with one thing wrong, and the key the refusal must name."""
    kind = draw(st.sampled_from(["empty", "log_bound", "range_type", "unknown", "shape", "budget", "objective", "cost",
                                 "sampler", "seeds", "extra"]))
    v = draw(st.floats(1e-3, 10.0))
    if kind == "empty":
        return {"space": {"lr": {draw(st.sampled_from(["loguniform", "uniform"])): [v, v]}}}, "search.space.lr"
    if kind == "log_bound":
        return {"space": {"std_scale": {"loguniform": [draw(st.floats(-10.0, 0.0)), v]}}}, "search.space.std_scale"
    if kind == "range_type":  # the member key's own range: tau > 0, gamma > 0
        key = draw(st.sampled_from(["tau", "gamma"]))
        return {"space": {key: {"uniform": [-v, v]}}}, f"search.space.{key}"
    if kind == "unknown":
        name = draw(st.sampled_from(["learning_rate", "lrr", "init_scale", "x" * 30]))
        return {"space": {name: {"uniform": [0.0, 1.0]}}}, f"search.space.{name[:15]}"
    if kind == "shape":
        key = draw(st.sampled_from(["width", "depth", "activation", "optimizer", "seed", "task_seed"]))
        return {"space": {key: {"choice": [1, 2]}}}, f"search.space.{key}"
    if kind == "budget":
        field = draw(st.sampled_from(["batches", "batch_size"]))
        bad = draw(st.one_of(st.integers(max_value=0), st.integers(10**6, 2**70), st.sampled_from([1.5, "two", None])))
        return {"budget": {**_VALID_SEARCH["budget"], field: bad}}, f"search.budget.{field}"
    if kind == "objective":
        objs = draw(st.sampled_from([["los"], ["loss", "costs"], ["Loss", "cost"], ["cost"], ["loss", "loss"], []]))
        return {"objectives": objs}, "search.objectives"
    if kind == "cost":
        return {"cost": draw(st.sampled_from(["time", "flop", "steps", ""]))}, "search.cost"
    if kind == "sampler":
        return {"sampler": {"kind": draw(st.sampled_from(["cmaes", "TPE", "grid"]))}}, "search.sampler.kind"
    if kind == "seeds":
        return {"seeds": draw(st.sampled_from([[], [-1], ["a"]]))}, "search.seeds"
    return {"budgett": 1}, "search.budgett"


@examples(40)
@given(st.data())
def test_mutated_search_sections_exit_2_with_one_line_naming_the_field(data):
    spec, _ = data.draw(tiny_specs())
    spec.update(axes=[], derived={}, observables=["loss"])  # the fixed part: one study
    change, key = data.draw(search_mutations())
    spec["search"] = {**_VALID_SEARCH, **change}
    _assert_refused(*_sweep(_dump(spec)), key=key)
