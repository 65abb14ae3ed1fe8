from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def quick_dict() -> dict:
    return yaml.safe_load((EXAMPLES / "quick.yaml").read_text())


def _tiny(**changes) -> dict:
    """A small valid sweep (4 members, 2 chunks) for unit tests."""
    base = {
        "name": "tiny",
        "task": {"name": "teacher_student", "d": 5, "k": 2, "n": 20, "n_test": 10, "seed": 3},
        "model": {"width": 6, "activation": "relu"},
        "init": {"kind": "kunin"},
        "optimizer": {"kind": "gd", "lr": 0.05},
        "steps": 30,
        "record": {"every": 10},
        "axes": [{"grid": {"tau": [0.5, 1.0], "delta": [-0.5, 0.5]}}],
        "execution": {"chunk_members": 2},
    }
    base.update(changes)
    return base


@pytest.fixture
def tiny():
    return _tiny


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """examples/quick.yaml run once, uninterrupted, local backend, one torch thread: the reference."""
    from lazyrich.sweep import load_spec, run_sweep

    return run_sweep(load_spec(EXAMPLES / "quick.yaml"), tmp_path_factory.mktemp("quick") / "ref.duckdb",
                     threads=1, progress=False)
