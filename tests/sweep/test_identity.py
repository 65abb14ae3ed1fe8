"""Member identity: every stored member carries the digest of its full resolved configuration, and a
resumed run matches stored members to planned ones by that digest, never by position. A spec that
only reorders keys resumes the same run and ends with exactly the uninterrupted records; a spec
that changes what a member computes is refused in one line naming the first differing key."""
import duckdb
import pandas as pd
import pytest

from lazyrich.errors import LazyrichError
from lazyrich.sweep import Store, execute_chunk, from_dict, run_sweep

CONFIG = ["tau", "delta", "seed"]


class StopAfter:
    """Runs chunks until `n` are done, then interrupts like Ctrl-C."""

    def __init__(self, n: int):
        self.n, self.done = n, 0

    def __call__(self, task):
        if self.done == self.n:
            raise KeyboardInterrupt
        self.done += 1
        return execute_chunk(task)


def _by_config(store, run_id) -> pd.DataFrame:
    """Records keyed by each member's configuration (not its id), in a canonical order."""
    db = Store(store)
    members = db.members(run_id)[["member", *CONFIG]]
    rec = db.records(run_id).merge(members, on="member").drop(columns="member")
    return rec.sort_values([*CONFIG, "step", "observable", "layer", "index"]).reset_index(drop=True)


def _interrupted(tmp_path, spec, n=1):
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, tmp_path / "s.duckdb", progress=False, runner=StopAfter(n))
    return tmp_path / "s.duckdb"


def test_reordered_grid_keys_resume_the_same_members(tmp_path, tiny):
    """Class 1: the grid block's key order changes member order; resume must not mix members."""
    axes = {"tau": [0.5, 1.0], "delta": [-0.5, 0.5], "seed": [1, 2]}
    written = from_dict(tiny(axes=[{"grid": axes}], execution={"chunk_members": 2}))
    reordered = from_dict(tiny(axes=[{"grid": dict(reversed(list(axes.items())))}], execution={"chunk_members": 2}))
    store = _interrupted(tmp_path, written, n=2)
    out = run_sweep(reordered, store, resume=True, progress=False)
    assert (out.computed, out.skipped, out.members) == (2, 2, 8)
    con = duckdb.connect(str(store), read_only=True)
    configs = con.execute("SELECT tau, delta, seed, count(*) FROM members GROUP BY ALL").fetchall()
    con.close()
    assert len(configs) == 8 and all(n == 1 for *_, n in configs)  # every configuration once
    ref = run_sweep(written, tmp_path / "ref.duckdb", progress=False)
    pd.testing.assert_frame_equal(_by_config(store, out.run_id), _by_config(ref.store, ref.run_id), check_exact=True)


def test_changed_spec_is_refused_naming_the_first_differing_key(tmp_path, tiny):
    """Class 8: --resume with different steps, values or seeds names the run, the key and the way out."""
    store = _interrupted(tmp_path, from_dict(tiny()))
    run_id = Store(store).runs().run_id.iloc[0]
    before = store.read_bytes()
    for change, key in [({"steps": 40}, "steps: 30 there, 40 here"),
                        ({"axes": [{"grid": {"tau": [0.5, 2.0], "delta": [-0.5, 0.5]}}]}, "axes[0].grid.tau[1]: 1.0 there, 2.0 here"),
                        ({"seed": 7}, "seed: 0 there, 7 here")]:
        with pytest.raises(LazyrichError) as err:
            run_sweep(from_dict(tiny(**change)), store, resume=True, progress=False)
        msg = str(err.value)
        assert "\n" not in msg and len(msg) < 400, msg
        assert msg.startswith(f"--resume found run {run_id} (interrupted, 1/2 chunks stored) but did not resume it: "
                              f"{key};"), msg
        assert f"lazyrich runs show {run_id} --spec" in msg and "drop --resume" in msg
        assert store.read_bytes() == before  # nothing written
    run_sweep(from_dict(tiny()), store, resume=True, progress=False)  # the original spec still resumes


def test_stored_member_with_a_different_digest_is_refused(tmp_path, tiny):
    """A stored member whose digest is not the planned one (e.g. a store edited by hand, or code that
    expands the axes differently) stops the resume; nothing is matched by id."""
    store = _interrupted(tmp_path, from_dict(tiny()))
    con = duckdb.connect(str(store))
    con.execute("UPDATE members SET tau = 3.0, digest = 'x' WHERE member = 0")
    con.close()
    with pytest.raises(LazyrichError, match=r"member 0 of run \S+ was stored with tau 3.0 but is planned with "
                                            r"tau 0.5: .* start a new run"):
        run_sweep(from_dict(tiny()), store, resume=True, progress=False)


def test_digest_covers_what_determines_the_numbers(tiny):
    """Canonical: key order and int/float spelling do not change a member's digest; every key that
    changes its numbers does (including the device and the thread count)."""
    from lazyrich.sweep import plan
    from lazyrich.sweep.identity import member_digests

    def digests(device="cpu", threads=1, **changes):
        return list(member_digests(plan(from_dict(tiny(**changes))), device, threads))

    base = digests()
    assert len(set(base)) == 4
    assert digests(axes=[{"grid": {"delta": [-0.5, 0.5], "tau": [0.5, 1]}}])[0] == base[0]  # same member 0 config
    assert sorted(digests(axes=[{"grid": {"delta": [-0.5, 0.5], "tau": [0.5, 1]}}])) == sorted(base)
    assert digests(name="other", description="x", execution={"chunk_members": 1}) == base
    assert digests(record=[0, 10, 20, 30]) == base  # the same record points spelled out
    for changes in ({"steps": 31}, {"loss_scale": 1.0}, {"seed": 1}, {"observables": ["loss"]},
                    {"optimizer": {"kind": "gd", "lr": 0.06}}, {"dtype": "float32"}, {"device": "cuda"},
                    {"threads": 2}, {"task": {"name": "teacher_student", "d": 5, "k": 2, "n": 21, "n_test": 10, "seed": 3}},
                    {"schedule": {"decay": "cosine"}}, {"execution": {"chunk_members": 2, "data_seed": 1}}):
        assert not set(digests(**changes)) & set(base), changes


def test_digest_is_the_hash_of_the_canonical_configuration(tiny):
    """The fast column-wise digest equals its definition: sha256 of the sorted-key canonical JSON of
    the run context and the member's keys."""
    import hashlib
    import json

    from lazyrich.sweep import plan
    from lazyrich.sweep.identity import canonical, context, member_digests
    from lazyrich.sweep.spec import MEMBER_KEYS

    p = plan(from_dict(tiny(axes=[{"grid": {"tau": [0.5, 1], "delta": [-0.0, 0.5], "lr": [0.05, 1e-3]}}])))
    got = member_digests(p, "cpu", 3)
    for member, row in p.members.iterrows():
        text = (json.dumps(canonical(context(p.spec, row["task"], "cpu", 3)), sort_keys=True) + "|" +
                json.dumps(canonical({k: row[k] for k in MEMBER_KEYS}), sort_keys=True))
        assert got[member] == hashlib.sha256(text.encode()).hexdigest()[:32]
    assert '"delta": 0,' in json.dumps(canonical(dict(p.members.loc[0])), sort_keys=True)  # -0.0 is 0
