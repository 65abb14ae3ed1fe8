"""The command line answers without the heavy stack: the import graph of `lazyrich.cli`, `--help` of every
command and `reproduce --list` hold no torch, pandas, duckdb or matplotlib (measured in a fresh
interpreter; wall time is measured in bench/, not here). The lazy package keeps its public names."""
import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "pandas", "duckdb", "matplotlib", "plotly", "scipy")

PROBE = r"""
import json, sys
from lazyrich.cli import app, main
argv = sys.argv[1:]
if argv:
    sys.argv = ["lazyrich", *argv]
    try:
        main()
    except SystemExit:
        pass
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


def loaded(*argv: str) -> list[str]:
    p = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def commands() -> list[list[str]]:
    from typer.main import get_command

    from lazyrich.cli import app

    root = get_command(app)
    out = []
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        out.append([name])
        for sub in getattr(cmd, "commands", {}):
            out.append([name, sub])
    return out


def test_cli_import_is_light():
    assert loaded() == []


def test_every_help_is_light():
    names = commands()
    assert {"inspect", "demo", "sweep", "runs", "reproduce", "predict", "coord-check", "view"} <= {n[0] for n in names}
    for argv in [[], *names]:
        assert loaded(*argv, "--help") == [], argv


def test_reproduce_list_is_light_and_matches_the_registry():
    assert loaded("reproduce", "--list") == []
    from lazyrich.experiments import REGISTRY
    from lazyrich.experiments.catalog import catalog

    cat = catalog()
    assert sorted(cat) == sorted(n for n in REGISTRY if REGISTRY[n].run.__module__.startswith("lazyrich.experiments."))
    for name, entry in cat.items():
        exp = REGISTRY[name]
        assert (entry.description, entry.runtime) == (exp.description, exp.runtime)
        assert entry.target == f"{exp.run.__module__}:{exp.run.__name__}"


def test_library_import_is_lazy_but_complete():
    code = ("import sys, lazyrich; light = 'torch' not in sys.modules; "
            "names = [n for n in lazyrich.__all__ if getattr(lazyrich, n) is None]; "
            "print(light, names, set(lazyrich.__all__) <= set(dir(lazyrich)))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stdout.split() == ["True", "[]", "True"], p.stderr


@pytest.mark.parametrize("package", ["lazyrich.sweep", "lazyrich.theory", "lazyrich.usermodels", "lazyrich.experiments"])
def test_rooms_resolve_every_public_name(package):
    import importlib

    mod = importlib.import_module(package)
    for name in mod.__all__:
        assert getattr(mod, name) is not None


def test_submodule_import_keeps_public_function_names():
    import lazyrich.theory.regime  # noqa: F401  (a module named like single_neuron.regime)
    import lazyrich.theory.single_neuron  # noqa: F401
    from lazyrich import theory

    assert callable(theory.regime) and theory.regime.__module__ == "lazyrich.theory.single_neuron"
    assert callable(theory.single_neuron) and theory.single_neuron.__name__ == "single_neuron"


def test_theory_observers_resolve_by_name_without_importing_theory():
    code = "from lazyrich.observe import make; print([type(o).__name__ for o in make(['linear_map'])])"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "LinearMap" in p.stdout, p.stderr


def test_default_store_path_agrees():
    from lazyrich.sweep import cli, store

    assert cli.DEFAULT_STORE == store.DEFAULT_STORE
