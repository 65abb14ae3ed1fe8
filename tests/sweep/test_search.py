"""The sweep `search` mode (sweep/search.py): batches of Optuna proposals, one ensemble per shape, stored
whole in DuckDB; a resumed search proposes bitwise what the uninterrupted one did; diverged trials are
told +inf; objectives and costs equal the records and the formulas written out here."""
from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from lazyrich.errors import LazyrichError
from lazyrich.sweep import SpecError, Store, from_dict
from lazyrich.sweep.executor import execute_chunk
from lazyrich.sweep.planner import plan
from lazyrich.sweep.identity import member_digests
from lazyrich.sweep.search import run_search, search_trials
from lazyrich.sweep.search_spec import search_from_dict

from .test_cli import _main  # the CLI driven in-process: exit code, stdout, stderr

ROOT = Path(__file__).resolve().parents[2]


def tiny_search(**search) -> dict:
    """Two studies (widths 4 and 8: two shapes, so a batch is two ensembles), 3 batches × 4 trials × 2 seeds;
    the lr range reaches far past stability, so some trials diverge."""
    return {"name": "tiny-search", "task": {"name": "teacher_student", "d": 5, "k": 2, "n": 20, "n_test": 10, "seed": 3},
            "model": {"width": 4, "activation": "relu"}, "optimizer": {"kind": "gd"}, "steps": 20,
            "record": [0, 10, 20], "observables": ["loss"], "axes": [{"grid": {"width": [4, 8]}}],
            "search": {"space": {"lr": {"loguniform": [1e-2, 1e3]}, "std_scale": {"uniform": [0.5, 1.5]}},
                       "objectives": ["loss", "test_loss", "cost"], "budget": {"batches": 3, "batch_size": 4},
                       "seeds": [0, 1], "sampler": {"kind": "tpe", "seed": 7}, **search}}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny search, uninterrupted."""
    store = tmp_path_factory.mktemp("search") / "ref.duckdb"
    out = run_search(tiny_search(), store, progress=False)
    return out, search_trials(store, out.run_id), Store(store).records(out.run_id)


def _table(store: Path, sql: str) -> list:
    with duckdb.connect(str(store), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_trials_and_members_as_budgeted(reference):
    out, trials, _ = reference
    assert (out.studies, out.batches, out.members) == (2, 3, 2 * 3 * 4 * 2)
    assert len(trials) == 2 * 3 * 4 and sorted(trials.groupby("study").size()) == [12, 12]
    assert set(trials.width) == {4, 8}
    assert trials.lr.between(1e-2, 1e3).all() and trials.std_scale.between(0.5, 1.5).all()
    # the batch's two ensembles: chunk b·2 + shape, each holding 4 trials × 2 seeds
    rows = _table(out.store, f"SELECT chunk, count(*), count(DISTINCT width) FROM members WHERE run_id = '{out.run_id}' "
                             "GROUP BY chunk ORDER BY chunk")
    assert rows == [(c, 8, 1) for c in range(6)]


def test_objectives_are_the_records_and_diverged_trials_are_inf(reference):
    out, trials, records = reference
    members = Store(out.store).members(out.run_id).set_index("member")
    final = records[(records.step == 20) & (records.layer == "")].pivot_table(index="member", columns="observable",
                                                                               values="value")
    assert (trials.state == "diverged").any() and (trials.state == "complete").any()  # lr up to 1e3 diverges
    for t in trials.itertuples():
        ms = [t.member, t.member + 1]  # its two seeds, side by side
        assert list(members.loc[ms, "seed"]) == [0, 1] and members.loc[ms, "lr"].nunique() == 1
        if (members.loc[ms, "status"] == "diverged").any():
            assert t.state == "diverged" and math.isinf(t.loss) and math.isinf(t.test_loss)
        else:
            assert t.state == "complete"
            assert t.loss == pytest.approx(final.loc[ms, "loss"].mean(), rel=1e-15)
            assert t.test_loss == pytest.approx(final.loc[ms, "test_loss"].mean(), rel=1e-15)
        assert t.cost == 20 * 2  # config-steps: steps × seeds


def test_flops_cost_is_six_n_params_steps():
    spec = tiny_search(cost="flops", objectives=["loss", "cost"], budget={"batches": 1, "batch_size": 2})
    s = search_from_dict(spec)
    from lazyrich.sweep.search import _flops_per_step

    row = s.fixed.loc[1]
    assert _flops_per_step(s, row) == 6 * 20 * (5 * 8 + 8 * 1)  # n = 20 samples, P = d·h + h·c


def test_resumed_search_proposes_bitwise_what_the_uninterrupted_one_did(reference, tmp_path):
    ref, ref_trials, ref_records = reference
    store = tmp_path / "cut.duckdb"
    calls = []

    def stop_in_second_batch(task):
        calls.append(task.chunk.index)
        if task.chunk.index == 3:  # batch 1's second ensemble: batch 1's first one is computed, never stored
            raise KeyboardInterrupt
        return execute_chunk(task)

    with pytest.raises(KeyboardInterrupt):
        run_search(tiny_search(), store, progress=False, runner=stop_in_second_batch)
    assert calls == [0, 1, 2, 3]
    db = Store(store)
    run_id = db.resolve("latest")
    assert db.run(run_id)["status"] == "interrupted"
    # never a partial batch: batch 0 whole, nothing of batch 1 (members, records, chunks, trials)
    assert sorted(db.chunk_digests(run_id)) == [0, 1]
    assert set(db.trials(run_id).batch) == {0} and len(db.trials(run_id)) == 8
    assert db.members(run_id).member.max() < 16 and db.records(run_id).member.max() < 16
    out = run_search(tiny_search(), store, resume=True, progress=False)
    assert (out.run_id, out.computed, out.skipped) == (run_id, 2, 1)
    trials = search_trials(store, run_id)
    cols = ["study", "batch", "trial", "member", "state", "loss", "test_loss", "cost", "lr", "std_scale", "width"]
    pd.testing.assert_frame_equal(trials[cols], ref_trials[cols], check_exact=True)
    pd.testing.assert_frame_equal(db.records(run_id), ref_records, check_exact=True)
    assert list(db.trials(run_id).system_attrs) == list(Store(ref.store).trials(ref.run_id).system_attrs)
    again = run_search(tiny_search(), store, resume=True, progress=False)
    assert (again.computed, again.skipped) == (0, 3)


def test_a_failed_write_leaves_nothing_of_the_batch(reference, tmp_path):
    """The batch's members, records and chunks are in the same transaction as its trials: a failure at the
    trials insert (a frame without its columns) rolls all of it back."""
    ref, _, _ = reference
    src = Store(ref.store)
    members = src.members(ref.run_id)
    records = src.records(ref.run_id)
    items = [(c, members[members.chunk == c], records[records.member.isin(members[members.chunk == c].member)], 1.0, "w",
              "code", "digest") for c in (0, 1)]
    store = tmp_path / "s.duckdb"
    db = Store(store)
    run_id = db.begin_run("x", "d", False, {}, "v", "cpu", "local", 1, 16, 2, "host")[0]
    with pytest.raises(KeyError):
        db.write_search_batch(run_id, 0, items, pd.DataFrame({"study": [0]}))
    assert _table(store, "SELECT (SELECT count(*) FROM members), (SELECT count(*) FROM records), "
                         "(SELECT count(*) FROM chunks)") == [(0, 0, 0)]


def test_search_members_have_the_digests_a_sweep_gives_the_same_configurations(reference):
    """A search does not change member identity: each stored search member's digest equals the digest of the
    same configuration planned by an ordinary sweep (whose digests identity.py computes unchanged)."""
    ref, _, _ = reference
    members = Store(ref.store).members(ref.run_id)
    pick = members.iloc[[0, 9, 30]]
    spec = {k: v for k, v in tiny_search().items() if k != "search"}
    spec["axes"] = [{"zip": {k: [v.item() if hasattr(v, "item") else v for v in pick[k]]
                             for k in ("width", "lr", "std_scale", "seed")}}]
    the_plan = plan(from_dict(spec))
    assert list(member_digests(the_plan, "cpu", 1)) == list(pick.digest)


def test_store_checks_healthy_and_spec_round_trips(reference):
    ref, _, _ = reference
    from lazyrich.sweep.check import check_store

    report = check_store(ref.store)
    assert report.healthy, report.lines
    assert f"run {ref.run_id} (done): 6/6 chunks intact" in "\n".join(report.lines)
    spec = Store(ref.store).spec_of(ref.run_id)
    assert spec["search"]["budget"] == {"batches": 3, "batch_size": 4}
    again = search_from_dict(yaml.safe_load(yaml.safe_dump(spec)))
    assert again.search == search_from_dict(tiny_search()).search


def test_nsga2_runs_generations_from_the_stored_trials(tmp_path):
    """NSGA-II keeps its generation in each trial's system attrs: stored and told back, batch 1 is generation 1."""
    out = run_search(tiny_search(sampler={"kind": "nsga2", "seed": 1}, budget={"batches": 2, "batch_size": 2}),
                     tmp_path / "nsga2.duckdb", progress=False)
    trials = Store(out.store).trials(out.run_id)
    gens = [json.loads(a)["NSGAIISampler:generation"] for a in trials.system_attrs]
    assert gens == [0, 0, 1, 1, 0, 0, 1, 1]  # study 0's two batches, then study 1's


@pytest.mark.parametrize("change,key", [
    ({"space": {"lr": {"loguniform": [0.1, 0.1]}}}, "search.space.lr"),                  # empty range
    ({"space": {"lr": {"loguniform": [0.0, 1.0]}}}, "search.space.lr"),                  # log range, bound ≤ 0
    ({"space": {"tau": {"uniform": [-1.0, 1.0]}}}, "search.space.tau"),                  # tau must be > 0
    ({"space": {"learning_rate": {"loguniform": [0.1, 1.0]}}}, "search.space.learning_rate"),  # unknown key
    ({"space": {"width": {"choice": [4, 8]}}}, "search.space.width"),                    # shape key
    ({"space": {}}, "search.space"),
    ({"budget": {"batches": 0, "batch_size": 4}}, "search.budget.batches"),
    ({"budget": {"batches": 2, "batch_size": 0}}, "search.budget.batch_size"),
    ({"objectives": ["los", "cost"]}, "search.objectives[0]"),
    ({"objectives": ["cost"]}, "search.objectives"),
    ({"cost": "time"}, "search.cost"),
    ({"sampler": {"kind": "cmaes"}}, "search.sampler.kind"),
    ({"seeds": []}, "search.seeds"),
    ({"budgets": 3}, "search.budgets"),
])
def test_bad_search_specs_are_one_line_errors(change, key):
    with pytest.raises(SpecError) as info:
        search_from_dict(tiny_search(**change), "f.yaml")
    line = str(info.value)
    assert "\n" not in line and line.startswith(f"f.yaml: {key}") and line.endswith("(nothing was run)"), line


def test_cli_runs_a_search_file_and_resumes_it(tmp_path, monkeypatch, capsys):
    path, store = tmp_path / "s.yaml", tmp_path / "runs" / "s.duckdb"
    path.write_text(yaml.safe_dump(tiny_search(budget={"batches": 1, "batch_size": 2})))
    code, out, err = _main(monkeypatch, capsys, "sweep", path, "--store", store, "--quiet")
    assert code == 0, err
    assert re.match(r"search \S+: 2 studies × 1 batches, 8 members \(1 batches computed, 0 already stored\)", out), out
    code, out, err = _main(monkeypatch, capsys, "sweep", path, "--store", store, "--quiet", "--resume")
    assert code == 0 and "(0 batches computed, 1 already stored)" in out, out + err
    code, out, err = _main(monkeypatch, capsys, "sweep", path, "--store", store, "--backend", "dask")
    assert code == 2 and "--backend dask: a search runs its batches in this process" in err


def test_cli_refuses_a_bad_search_with_exit_2_and_writes_nothing(tmp_path, monkeypatch, capsys):
    path, store = tmp_path / "s.yaml", tmp_path / "runs" / "s.duckdb"
    path.write_text(yaml.safe_dump(tiny_search(budget={"batches": 0, "batch_size": 4})))
    code, out, err = _main(monkeypatch, capsys, "sweep", path, "--store", store)
    assert code == 2 and out == "" and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and "search.budget.batches" in err
    assert not store.parent.exists()


def test_a_search_file_given_to_the_sweep_api_names_the_search_entry_point():
    with pytest.raises(SpecError, match=r"search: this file is a search; run it with `lazyrich sweep FILE`"):
        from_dict(tiny_search())


def test_missing_optuna_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    with pytest.raises(LazyrichError, match=r'pip install "lazyrich\[search\]"'):
        run_search(tiny_search(), tmp_path / "s.duckdb", progress=False)
    assert not (tmp_path / "s.duckdb").exists()


def test_example_search_file_validates():
    s = search_from_dict(yaml.safe_load((ROOT / "examples" / "search_lr.yaml").read_text()))
    assert len(s.fixed) == 3 and set(s.search.space) == {"lr", "std_scale"}
    json.dumps(s.to_dict())


def test_docs_show_the_example_file_and_a_real_error_line():
    """docs/sweeps.md's Search section: its YAML block is examples/search_lr.yaml (which the page's Python snippet
    runs, tests/test_snippets.py), and its error line is what the validation prints."""
    text = (ROOT / "docs" / "sweeps.md").read_text(encoding="utf-8")
    section = text[text.index("## Search"):text.index("## Planning and running")]
    start = section.index("```yaml\n") + len("```yaml\n")
    assert section[start:section.index("```", start)] == (ROOT / "examples" / "search_lr.yaml").read_text()
    with pytest.raises(SpecError) as info:
        search_from_dict(tiny_search(space={"lr": {"loguniform": [0.1, 0.1]}}), "s.yaml")
    assert f"error: {info.value}\n" in section


def test_the_sampler_is_told_the_stored_trials():
    """Told 80 trials whose loss is (log₁₀ lr)² (best at lr = 1), TPE proposes near lr = 1: the mean of (log₁₀ lr)²
    over its proposals is far below 7/3, its value for the uniform start-up draws on [−2, 3] it makes when told
    nothing."""
    from lazyrich.sweep.search import ask_batch

    s = search_from_dict(tiny_search(objectives=["loss"], budget={"batches": 4, "batch_size": 4}))
    x = np.random.default_rng(0).uniform(-2, 3, 80)
    history = pd.DataFrame({"params": [json.dumps({"lr": 10**v, "std_scale": 1.0}) for v in x],
                            "objectives": [[v**2] for v in x], "system_attrs": ["{}"] * 80})
    told = np.array([math.log10(p["lr"]) for p, _ in ask_batch(s, 0, 3, history)])
    blind = np.array([math.log10(p["lr"]) for p, _ in ask_batch(s, 0, 3, history.iloc[:0])])
    assert np.mean(told**2) < 0.5 and np.all((-2 <= blind) & (blind <= 3)), (told, blind)
    assert not np.allclose(np.sort(told), np.sort(blind))


def test_resume_refuses_an_unfinished_search_of_another_section(tmp_path):
    store = tmp_path / "s.duckdb"

    def stop_after_first_batch(task):
        if task.chunk.index == 2:
            raise KeyboardInterrupt
        return execute_chunk(task)

    spec = tiny_search(budget={"batches": 2, "batch_size": 2})
    with pytest.raises(KeyboardInterrupt):
        run_search(spec, store, progress=False, runner=stop_after_first_batch)
    other = tiny_search(budget={"batches": 2, "batch_size": 2}, sampler={"kind": "tpe", "seed": 8})
    with pytest.raises(LazyrichError, match=r"--resume found run tiny-search-\S+ \(interrupted\) but did not resume it"):
        run_search(other, store, resume=True, progress=False)
    reordered = dict(reversed(list(spec.items())))  # the same file with its keys in another order resumes
    out = run_search(reordered, store, resume=True, progress=False)
    assert (out.computed, out.skipped) == (1, 1)
