"""Cost-aware search on the ensemble engine: a sweep's `search:` section (search_spec.py) run as
batches of proposals, each batch one ensemble per shape, every batch stored whole in the DuckDB store.

Every member of the fixed axes is one *study*. At batch b, each study's sampler (Optuna, ask-and-tell:
multi-objective TPE, NSGA-II or random) is rebuilt from scratch — seeded with (sampler seed, study, b)
and told every trial stored so far, exactly as read back from the store — and asked for `batch_size`
configurations. The proposals of all studies that share a shape run as one ensemble through the sweep
executor (`execute_chunk`); the batch's chunks and trials are written in one transaction. So a resumed
search (`--resume`) rebuilds the same samplers from the same stored trials and proposes bitwise what the
uninterrupted one would (with cost `wall_s` the costs told are measured times, so only the stored ones
repeat), and an interrupted search never leaves part of a batch.

A trial's objectives are `loss` / `test_loss` at the horizon (mean over `search.seeds`, each seed a
member of the ensemble) and `cost`: config-steps, training FLOPs or the wall time of its members. A
trial with a diverged member (or a non-finite loss) is a *diverged* trial: Optuna is told loss = +inf
(a completed trial, ranked last by TPE and NSGA-II, so the sampler learns where runs diverge; NaN
would make it a failed trial that the samplers ignore).
"""
from __future__ import annotations

import json
import math
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import LazyrichError, require
from .executor import ChunkResult, ChunkTask, Runner, check_device, execute_chunk
from .identity import RESULTS_VERSION, _hash, canonical, digests_of, set_digest
from .keys import INT_KEYS, STR_KEYS
from .planner import GROUP_KEYS, Chunk, widths
from .progress import SweepProgress
from .search_spec import Search, load_search, search_from_dict
from .spec import MEMBER_KEYS
from .store import DEFAULT_STORE, TRIAL_COLUMNS, Store, StoreBusy, StoreDamaged


@dataclass
class SearchOutcome:
    run_id: str
    store: Path
    studies: int
    batches: int
    members: int
    computed: int  # batches computed by this call
    skipped: int  # batches already in the store (resume)
    member_status: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    def trials(self) -> pd.DataFrame:
        return search_trials(self.store, self.run_id)


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise LazyrichError('the sweep search mode needs Optuna: pip install "lazyrich[search]"') from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def distributions(search: Search) -> dict[str, Any]:
    """The search space as Optuna distributions (integers [lo, hi) → IntDistribution(lo, hi − 1))."""
    from .spec import Choice, Integers, LogUniform

    d = _optuna().distributions
    out = {}
    for key, dist in search.search.space.items():
        if isinstance(dist, Choice):
            out[key] = d.CategoricalDistribution(list(dist.choice))
        elif isinstance(dist, Integers):
            out[key] = d.IntDistribution(dist.integers[0], dist.integers[1] - 1)
        elif isinstance(dist, LogUniform):
            out[key] = d.FloatDistribution(*dist.loguniform, log=True)
        else:
            out[key] = d.FloatDistribution(*dist.uniform)
    return out


def _sampler(search: Search, study: int, batch: int) -> Any:
    optuna = _optuna()
    s = search.search.sampler
    seed = int(np.random.SeedSequence([s.seed, study, batch]).generate_state(1)[0])
    k = search.search.budget.batch_size
    if s.kind == "tpe":  # the first batch is the random start-up; constant liar spreads a batch's proposals
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=k, multivariate=True, constant_liar=True)
    if s.kind == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=k, seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def ask_batch(search: Search, study: int, batch: int, history: pd.DataFrame) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """`batch_size` proposals (params, sampler system attrs) of `study` at `batch`, from a sampler seeded
    by (seed, study, batch) and told the study's stored trials `history` (rows of `Store.trials`)."""
    optuna = _optuna()
    dists = distributions(search)
    n_obj = len(search.search.objectives)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        st = optuna.create_study(directions=["minimize"] * n_obj, sampler=_sampler(search, study, batch))
        for t in history.itertuples():
            st.add_trial(optuna.trial.create_trial(params=json.loads(t.params), distributions=dists,
                                                   values=[float(v) for v in t.objectives],
                                                   system_attrs=json.loads(t.system_attrs)))
        asked = [st.ask(dists) for _ in range(search.search.budget.batch_size)]
        frozen = {t.number: t for t in st.get_trials(deepcopy=False)}
        return [(dict(a.params), dict(frozen[a.number].system_attrs)) for a in asked]


def _typed(rows: list[dict[str, Any]], ids: list[int]) -> pd.DataFrame:
    """Member rows with the members table's dtypes (as planner.expand gives them)."""
    members = pd.DataFrame(rows, columns=list(MEMBER_KEYS), index=pd.Index(ids, name="member"))
    for key in MEMBER_KEYS:
        kind = np.int64 if key in INT_KEYS else str if key in STR_KEYS else np.float64
        members[key] = members[key].astype(kind)
    return members


def search_digest(search: Search, device: str, threads: int) -> str:
    """What `--resume` matches: the digests of every study's members as a sweep would store them (so the
    sweep context, device, threads and RESULTS_VERSION), and the search section."""
    fixed = search.fixed
    if search.seeds is not None:
        fixed = pd.concat([fixed.assign(seed=s) for s in search.seeds], ignore_index=True)
    base = set_digest(digests_of(search.sweep, fixed, device, threads))
    return _hash(base + "|search|" + json.dumps(canonical(search.search.model_dump(mode="json")), sort_keys=True))


def _flops_per_step(search: Search, row: pd.Series) -> float:
    """Multiply-adds ×2 of one training step of one member: forward 2nP, backward 4nP (n samples per step)."""
    sweep = search.sweep
    w = widths(sweep, row)
    params = sum(a * b for a, b in zip(w[1:], w[:-1])) + (sum(w[1:-1]) if sweep.model.bias else 0)
    task = sweep.tasks[str(row["task"])]
    n = sweep.optimizer.batch_size or task.n or 2 * w[0]
    return 6.0 * n * params


def _trials_of(search: Search, result: ChunkResult, members: pd.DataFrame, meta: dict[int, tuple[int, int, int]],
               asked: dict[tuple[int, int], tuple[dict, dict]], batch: int) -> list[dict[str, Any]]:
    """Trial rows of one computed chunk: objectives from its members' final records (mean over seeds;
    +inf when a member diverged or its value is not finite), cost, params and sampler attrs."""
    s = search.search
    seeds = len(search.seeds or [0])
    steps = len(search.sweep.record_points()) if search.sweep.flow is not None else int(search.sweep.steps or 0)
    rec = result.records
    rec = rec[(rec["layer"] == "") & (rec["index"] == 0)]
    last = rec.groupby("member")["step"].transform("max")
    final = rec[rec["step"] == last].set_index(["member", "observable"])["value"]
    diverged = set(result.status.loc[result.status["status"] == "diverged", "member"].tolist())
    per_member_wall = result.wall_s / max(len(result.status), 1)
    out = []
    by_trial: dict[tuple[int, int], list[int]] = {}
    for m in result.status["member"].tolist():
        study, trial, _ = meta[m]
        by_trial.setdefault((study, trial), []).append(m)
    for (study, trial), ms in by_trial.items():
        bad = any(m in diverged for m in ms)
        values = []
        for name in s.objectives:
            if name == "cost":
                if s.cost == "config_steps":
                    values.append(float(steps * len(ms)))
                elif s.cost == "flops":
                    values.append(float(sum(_flops_per_step(search, members.loc[m]) * steps for m in ms)))
                else:
                    values.append(float(per_member_wall * len(ms)))
                continue
            v = np.array([final.get((m, name), np.nan) for m in ms], float)
            bad = bad or not np.all(np.isfinite(v))
            values.append(float(v.mean()))
        cost = next((v for n, v in zip(s.objectives, values) if n == "cost"), math.nan)
        values = [math.inf if bad and n != "cost" else v for n, v in zip(s.objectives, values)]
        params, attrs = asked[(study, trial)]
        out.append({"study": study, "batch": batch, "trial": trial, "member": min(ms), "state": "diverged" if bad else "complete",
                    "objectives": values, "cost": cost, "params": json.dumps(params), "system_attrs": json.dumps(attrs)})
    assert len(out) * seeds == len(result.status)
    return out


def _validated(spec: Search | Mapping[str, Any] | str | Path) -> Search:
    if isinstance(spec, Search):
        return search_from_dict(spec.to_dict(), f"search {spec.name!r}")
    if isinstance(spec, Mapping):
        return search_from_dict(dict(spec))
    return load_search(spec)


def run_search(spec: Search | Mapping[str, Any] | str | Path, store: str | Path = DEFAULT_STORE, *, resume: bool = False,
               device: str = "cpu", threads: int | None = None, progress: bool | None = None, busy_timeout: float = 30.0,
               runner: Runner = execute_chunk) -> SearchOutcome:
    """Run a search (a sweep file with a `search:` section) batch by batch into the store.

    With `resume`, the newest run of the same search (name, device, thread count, studies and search
    section) continues: its stored batches are kept and the samplers, rebuilt from them, propose the
    missing batches as the uninterrupted run would have."""
    require(threads is None or threads >= 1, f"--threads {threads} must be at least 1")
    check_device(device)
    search = _validated(spec)
    optuna = _optuna()  # a missing extra is refused before any work
    import torch

    threads = threads or 1
    db = Store(store, busy_timeout)
    db.verify()
    sweep, s = search.sweep, search.search
    seeds = search.seeds
    n_seeds = len(seeds or [0])
    studies = search.fixed
    shape_of = {g: tuple(_plain(v) for v in row) for g, row in studies[list(GROUP_KEYS)].iterrows()}
    shapes = list(dict.fromkeys(shape_of.values()))
    B, K, G = s.budget.batches, s.budget.batch_size, len(studies)
    n_members, n_chunks = G * B * K * n_seeds, B * len(shapes)
    digest = search_digest(search, device, threads)
    config = {"spec": sweep.model_dump(mode="json"), "search": s.model_dump(mode="json"), "device": device,
              "threads": threads, "backend": "local", "results_version": RESULTS_VERSION,
              "optuna": optuna.__version__}  # proposals after a resume are bitwise the same under the same version
    from .run import code_version

    version = code_version()
    run_id: str | None = None
    if resume:
        found = db.find_runs(sweep.name, device)
        match = next((r for r in found if r["members_digest"] == digest), None)
        if match is None:
            other = next((r for r in found if r["status"] != "done"), None)
            if other is not None:
                raise LazyrichError(f"--resume found run {other['run_id']} ({other['status']}) but did not resume it: it was "
                                    f"started from another file or search section; sweep that file "
                                    f"(lazyrich runs show {other['run_id']} --spec), or drop --resume to start a new run")
        else:
            run_id, before = db.begin_run(sweep.name, digest, True, config, version, device, "local", threads, n_members,
                                          n_chunks, socket.gethostname(), sweep.digest())
            if before == "done":
                return _outcome(db, run_id, search, 0, B, 0.0)
            if match["config"].get("optuna") != optuna.__version__:
                warnings.warn(f"resuming {run_id} (started with Optuna {match['config'].get('optuna')}) with Optuna "
                              f"{optuna.__version__}: the missing batches may differ from the uninterrupted search's",
                              stacklevel=2)
    stored = db.trials(run_id) if run_id else pd.DataFrame(columns=TRIAL_COLUMNS)
    done = set(stored["batch"].tolist())
    start = time.perf_counter()
    saved_threads = torch.get_num_threads()
    computed = 0
    try:
        with SweepProgress(n_chunks, n_members, len(done) * len(shapes), len(done) * G * K * n_seeds, progress,
                           sweep.name) as bar:
            for b in range(B):
                if b in done:
                    continue
                rows, ids, meta, asked = [], [], {}, {}
                for g in range(G):
                    history = stored[stored["study"] == g]
                    for t, (params, attrs) in enumerate(ask_batch(search, g, b, history)):
                        trial = b * K + t
                        asked[(g, trial)] = (params, attrs)
                        for j, seed in enumerate(seeds or [None]):
                            m = ((b * G + g) * K + t) * n_seeds + j
                            row = {**studies.loc[g].to_dict(), **params}
                            if seed is not None:
                                row["seed"] = seed
                            rows.append(row)
                            ids.append(m)
                            meta[m] = (g, trial, j)
                members = _typed(rows, ids)
                digests = digests_of(sweep, members, device, threads)
                items, trials = [], []
                for i, shape in enumerate(shapes):
                    mine = [m for m in ids if shape_of[meta[m][0]] == shape]
                    chunk = Chunk(b * len(shapes) + i, shape, tuple(mine))
                    result = runner(ChunkTask(sweep, chunk, members.loc[mine], device, threads))
                    mrows = members.loc[mine].reset_index()
                    mrows["chunk"] = chunk.index
                    status = result.status.set_index("member").loc[mine]
                    mrows["status"] = status["status"].to_numpy()
                    mrows["diverged_step"] = status["diverged_step"].to_numpy(np.int64)
                    mrows["digest"] = digests.loc[mine].to_numpy()
                    items.append((chunk.index, mrows, result.records, result.wall_s, result.worker, result.code,
                                  set_digest(digests.loc[mine])))
                    trials += _trials_of(search, result, members, meta, asked, b)
                    bar.advance(len(mine), result.member_steps)
                if run_id is None:  # the first batch is computed: only now does the run exist
                    run_id, _ = db.begin_run(sweep.name, digest, resume, config, version, device, "local", threads,
                                             n_members, n_chunks, socket.gethostname(), sweep.digest())
                db.write_search_batch(run_id, b, items, pd.DataFrame(trials))
                computed += 1
                stored = db.trials(run_id)  # the samplers are told what the store holds, nothing else
    except BaseException as exc:
        if run_id is not None and not isinstance(exc, (StoreDamaged, StoreBusy)):
            db.finish(run_id, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    finally:
        torch.set_num_threads(saved_threads)
    assert run_id is not None
    complete = set(db.trials(run_id)["batch"].tolist()) == set(range(B))
    db.finish(run_id, "done" if complete else "failed")
    return _outcome(db, run_id, search, computed, B - computed, time.perf_counter() - start)


def _plain(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x


def _outcome(db: Store, run_id: str, search: Search, computed: int, skipped: int, wall: float) -> SearchOutcome:
    info = db.run(run_id)
    return SearchOutcome(run_id, db.path, len(search.fixed), search.search.budget.batches, int(info["n_members"]),
                         computed, skipped, info["member_status"], wall)


def search_trials(store: str | Path, run_id: str) -> pd.DataFrame:
    """A search run's trials, one row each: study, batch, trial, state, one column per objective (loss,
    test_loss, cost), the searched params, and the study's fixed keys (from its first member)."""
    db = Store(store)
    config = json.loads(json.dumps(db.spec_of(run_id)))
    require("search" in config, f"run {run_id} is a sweep, not a search: it has no trials")
    objectives = config["search"]["objectives"]
    t = db.trials(run_id)
    members = db.members(run_id).set_index("member")
    out = t[["study", "batch", "trial", "member", "state"]].copy()
    for i, name in enumerate(objectives):
        out[name] = [float(v[i]) for v in t["objectives"]]
    if "cost" not in objectives:
        out["cost"] = t["cost"].to_numpy(float)
    fixed = members.loc[out["member"], list(MEMBER_KEYS)].reset_index(drop=True)
    for key in MEMBER_KEYS:
        out[key] = fixed[key].to_numpy()
    return out.reset_index(drop=True)
