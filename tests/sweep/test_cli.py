"""`lazyrich sweep`, `lazyrich runs list | show | export` through the real entry point, and every SQL
example of docs/sweeps.md against a stored run."""
import re
import sys
from pathlib import Path

import duckdb
import pandas as pd
import torch
import yaml

from lazyrich import cli
from lazyrich.sweep import Store

DOCS = Path(__file__).resolve().parents[2] / "docs" / "sweeps.md"


def _main(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["lazyrich", *map(str, args)])
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_sweep_then_runs_list_show_export(tmp_path, monkeypatch, capsys, tiny):
    spec, store = tmp_path / "tiny.yaml", tmp_path / "runs" / "s.duckdb"
    spec.write_text(yaml.safe_dump(tiny(axes=[{"grid": {"tau": [0.5, 1.0], "lr": [0.05, 500.0]}}])))
    code, out, err = _main(monkeypatch, capsys, "sweep", spec, "--store", store, "--quiet")
    assert code == 0, err
    run_id = re.match(r"run (\S+): 4 members in 2 chunks \(2 computed\); 2 diverged, 2 ok;", out).group(1)
    code, out, _ = _main(monkeypatch, capsys, "sweep", spec, "--store", store, "--resume", "--quiet")
    assert code == 0 and out.startswith(f"run {run_id} was already complete (4 members: 2 diverged, 2 ok)")
    code, out, _ = _main(monkeypatch, capsys, "runs", "list", "--store", store)
    assert code == 0 and run_id in out and "done" in out and "2/2" in out
    code, out, _ = _main(monkeypatch, capsys, "runs", "show", run_id[:-3], "--store", store)
    assert code == 0 and f"run_id: {run_id}" in out and "members: 4 (2 diverged, 2 ok)" in out and "test_loss" in out
    code, out, _ = _main(monkeypatch, capsys, "runs", "export", "latest", "--format", "csv", "--store", store)
    path = store.parent / f"{run_id}.csv"
    assert code == 0 and out.strip() == f"wrote {path}"
    frame = pd.read_csv(path)
    assert len(frame) == len(Store(store).records(run_id)) and set(frame.status) == {"ok", "diverged"}
    assert (frame[frame.status == "diverged"].lr == 500.0).all()
    code, _, err = _main(monkeypatch, capsys, "runs", "show", "nope", "--store", store)
    assert code == 2 and err.startswith("error: no run 'nope'")
    code, _, err = _main(monkeypatch, capsys, "sweep", spec, "--store", store, "--workers", "2", "--quiet")
    assert code == 2 and err.strip() == "error: --workers starts a Dask LocalCluster: add --backend dask"
    if not torch.cuda.is_available():
        code, _, err = _main(monkeypatch, capsys, "sweep", spec, "--store", store, "--device", "cuda", "--quiet")
        assert code == 2 and err.strip() == "error: CUDA is not available on this machine: use --device cpu"


def _sql_blocks() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOCS.read_text(), re.S)


def test_docs_sql_examples_run(quick_run, tmp_path):
    blocks = _sql_blocks()
    assert len(blocks) == 7
    export = Store(quick_run.store).export(quick_run.run_id, tmp_path / "fig1.parquet", "parquet")
    con = duckdb.connect(str(quick_run.store), read_only=True)
    try:
        for sql in blocks:
            sql = sql.replace("'fig1.parquet'", f"'{export}'")
            frame = con.execute(sql, {"run": quick_run.run_id} if "$run" in sql else None).df()
            if "diverged" not in sql:  # quick.yaml has no diverged members
                assert len(frame) > 0, sql
    finally:
        con.close()
    grid = con = duckdb.connect(str(quick_run.store), read_only=True)
    grid = con.execute(blocks[1], {"run": quick_run.run_id}).df()
    con.close()
    assert len(grid) == 16 and (grid.seeds == 4).all() and (grid.test_loss > 0).all()


def test_resume_of_a_changed_sweep_says_how_to_resume_and_that_works(tmp_path, monkeypatch, capsys, tiny):
    """Class 8 through the CLI: one line naming the run, the first differing key and the command that
    prints the run's own spec; sweeping that spec with --resume then continues the run."""
    from lazyrich.sweep import run_sweep

    from .test_identity import StopAfter

    spec, store = tmp_path / "tiny.yaml", tmp_path / "s.duckdb"
    spec.write_text(yaml.safe_dump(tiny(steps=40)))
    with __import__("pytest").raises(KeyboardInterrupt):
        run_sweep(spec, store, progress=False, runner=StopAfter(1))
    spec.write_text(yaml.safe_dump(tiny()))  # the file was edited since: steps 40 → 30
    code, out, err = _main(monkeypatch, capsys, "sweep", spec, "--store", store, "--resume", "--quiet")
    run_id = Store(store).runs().run_id.iloc[0]
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: --resume found run {run_id} (interrupted, 1/2 chunks stored) but did not resume "
                          "it: steps: 40 there, 30 here; to resume it, sweep the spec it was started with "
                          f"(lazyrich runs show {run_id} --spec --store {store} > tiny.yaml), or drop --resume")
    code, out, _ = _main(monkeypatch, capsys, "runs", "show", run_id, "--spec", "--store", store)
    assert code == 0 and yaml.safe_load(out)["steps"] == 40
    (tmp_path / "again.yaml").write_text(out)
    code, out, err = _main(monkeypatch, capsys, "sweep", tmp_path / "again.yaml", "--store", store, "--resume", "--quiet")
    assert code == 0, err
    assert out.startswith(f"run {run_id}: 4 members in 2 chunks (1 computed, 1 already stored)")


def test_every_test_named_in_guarantees_exists():
    """docs/guarantees.md backs each promise with tests: every test it names is defined."""
    root = DOCS.parents[1]
    text = (root / "docs" / "guarantees.md").read_text()
    defined = {m for path in (root / "tests").rglob("test_*.py") for m in re.findall(r"^def (test_\w+)", path.read_text(), re.M)}
    named = set(re.findall(r"\b(test_\w+)`", text)) | set(re.findall(r"::(test_\w+)", text))
    assert len(named) >= 15 and named <= defined, sorted(named - defined)
    for path in re.findall(r"`(tests/[\w/]+\.py)", text):
        assert (root / path).is_file(), path


def test_runs_list_on_a_store_loads_no_torch_or_pandas(tmp_path, tiny):
    """`runs list` answers from DuckDB alone (the import graph, not wall time, is what is tested)."""
    import json
    import subprocess
    import sys

    from lazyrich.sweep import run_sweep

    store = tmp_path / "s.duckdb"
    run_sweep(tiny(), store, threads=1, progress=False)
    code = ("import json, sys\nfrom lazyrich.cli import main\nsys.argv = ['lazyrich', 'runs', 'list', '--store', sys.argv[1]]\n"
            "code = 0\ntry:\n    main()\nexcept SystemExit as e:\n    code = e.code or 0\n"
            "print(json.dumps([code, sorted(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules)]))")
    p = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True, text=True, timeout=120)
    out = p.stdout.strip().splitlines()
    assert "tiny" in p.stdout and json.loads(out[-1]) == [0, []], p.stdout + p.stderr
