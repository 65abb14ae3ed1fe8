"""Parametrized models keep their parametrization under torch.compile, DDP and FSDP2 (2 CPU processes, gloo) and
through torch.distributed.checkpoint: same outputs and the same first AdamW steps as the eager, single-process
model (float64, so the tolerances are rounding), and the plan restored from a checkpoint."""
from __future__ import annotations

import os
import queue
import socket

import pytest
import torch
import torch.multiprocessing as mp

from lazyrich.errors import LazyrichError
from lazyrich.models.gpt import GPT
from lazyrich.usermodels import inspect, param_groups, parametrize, plan_of
from lazyrich.usermodels.distributed import plan_from_checkpoint, restore_checkpoint, unwrap

STEPS = 3  # float64 throughout: tolerances are rounding


def make(seed: int = 0, gamma: float = 2.0) -> torch.nn.Module:
    """μP + CompleteP GPT: hooked multipliers (γ on the readout), depth branch multipliers, 1/d_head attention."""
    model = GPT(16, 2, vocab=32, context=8, head_dim=8).double()
    base = GPT(8, 1, vocab=32, context=8, head_dim=8).double()
    return parametrize(model, "mup", base=base, optimizer="adam", depth="completep", gamma=gamma, seed=seed)


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 32, (4, 8), generator=g), torch.randint(0, 32, (4, 8), generator=g)


def loss_of(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())


def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, groups_of: torch.nn.Module | None = None) -> None:
    opt = torch.optim.AdamW(param_groups(groups_of or model, 3e-2, 0.1, eps=1e-8))
    for _ in range(STEPS):
        opt.zero_grad()
        loss_of(model, x, y).backward()
        opt.step()


def reference() -> dict[str, torch.Tensor]:
    model = make()
    train(model, *data())
    return {k: v.detach() for k, v in model.state_dict().items() if torch.is_tensor(v)}


def test_compile_keeps_the_parametrization():
    torch.set_num_threads(1)
    eager, model = make(), make()
    compiled = torch.compile(model, backend="eager")  # dynamo tracing (aot_eager, inductor: docs/usermodels.md)
    x, y = data()
    assert torch.allclose(compiled(x), eager(x), rtol=0, atol=1e-12)
    assert plan_of(compiled) == plan_of(eager) and "_orig_mod._lazyrich._extra_state" in compiled.state_dict()
    assert unwrap(compiled) is model and inspect(compiled).lr_scale.tolist() == inspect(eager).lr_scale.tolist()
    g_c, g_e = param_groups(compiled, 1e-2, eps=1e-8), param_groups(eager, 1e-2, eps=1e-8)
    assert [(g["names"], g["lr"], g["eps"]) for g in g_c] == [(g["names"], g["lr"], g["eps"]) for g in g_e]
    train(compiled, x, y)
    train(eager, x, y)
    for (name, a), b in zip(model.named_parameters(), eager.parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-12), name
    # a checkpoint with another readout multiplier (γ = 4), loaded into the module (a compiled module's own keys
    # carry torch's "_orig_mod." prefix), reaches the compiled graph: dynamo guards on the metadata it read
    other = make(seed=1, gamma=4.0)
    model.load_state_dict(other.state_dict())
    assert torch.allclose(compiled(x), other(x), rtol=0, atol=1e-12)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: "mp.Queue") -> None:
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard
    from torch.nn.parallel import DistributedDataParallel as DDP

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        x, y = data()
        xs, ys = x.chunk(world)[rank], y.chunk(world)[rank]  # equal halves: the mean of the two means is the full mean
        ddp_model = make()
        train(DDP(ddp_model), xs, ys)
        fsdp_model = make()
        for block in fsdp_model.blocks:
            fully_shard(block)
        fully_shard(fsdp_model)
        train(fsdp_model, xs, ys)
        full = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in fsdp_model.state_dict().items()}
        if rank == 0:
            as_np = lambda sd: {k: v.detach().numpy().copy() for k, v in sd.items() if torch.is_tensor(v)}  # noqa: E731
            out.put(("ok", as_np(ddp_model.state_dict()), as_np(full), plan_of(fsdp_model) == plan_of(make())))
    except Exception as e:  # report to the parent instead of hanging it
        out.put(("error", repr(e)[:500], None, None))
    finally:
        dist.destroy_process_group()


def test_ddp_and_fsdp2_take_the_same_first_steps_as_one_process():
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, out)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        status, ddp_sd, fsdp_sd, same_plan = out.get(timeout=240)
    except queue.Empty:
        status, ddp_sd = "timeout", None
    for p in procs:
        p.join(timeout=60)
        if p.is_alive():
            p.kill()
    assert status == "ok", ddp_sd
    ref = reference()
    for name, sd in (("DDP", ddp_sd), ("FSDP2", fsdp_sd)):
        assert set(sd) == set(ref), name
        for k, v in sd.items():
            # 1e-10: key biases get no gradient (softmax ignores a shift shared by all keys), so Adam turns
            # rounding-level gradients into steps; every other tensor agrees to 1e-13
            assert torch.allclose(torch.from_numpy(v), ref[k], rtol=0, atol=1e-10), (name, k)
    assert same_plan


def test_ddp_wrapper_groups():
    # DDP needs a process group only to be built; its `.module` prefix is what param_groups must see through
    class Wrapper(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.module = m
    model = make()
    groups = param_groups(Wrapper(model), 1e-2)
    assert [g["names"] for g in groups] == [g["names"] for g in param_groups(model, 1e-2)]
    assert all(a is b for g, h in zip(groups, param_groups(model, 1e-2)) for a, b in zip(g["params"], h["params"]))
    with pytest.raises(LazyrichError, match="parametrized module"):
        unwrap(torch.nn.Sequential(torch.nn.Linear(2, 2), model))  # not a wrapper: names differ without a known attribute


def test_distributed_checkpoint_round_trip(tmp_path):
    import torch.distributed.checkpoint as dcp

    model = make(gamma=2.0)
    train(model, *data())
    dcp.save(model.state_dict(), checkpoint_id=str(tmp_path / "ckpt"))
    x, _ = data()
    # 1. into a model parametrized the same way (other seed): the usual state_dict path
    same = make(seed=7, gamma=2.0)
    state = same.state_dict()
    dcp.load(state, checkpoint_id=str(tmp_path / "ckpt"))
    same.load_state_dict(state)
    assert torch.equal(same(x), model(x)) and plan_of(same) == plan_of(model)
    # 2. into a fresh model: the plan is read back from the flattened metadata
    assert plan_from_checkpoint(tmp_path / "ckpt") == plan_of(model)
    fresh = restore_checkpoint(GPT(16, 2, vocab=32, context=8, head_dim=8).double(), tmp_path / "ckpt")
    assert torch.equal(fresh(x), model(x)) and plan_of(fresh) == plan_of(model)
    assert [(g["names"], g["lr"]) for g in param_groups(fresh, 1e-2)] == [(g["names"], g["lr"]) for g in param_groups(model, 1e-2)]
    plain = GPT(16, 2, vocab=32, context=8, head_dim=8).double()
    dcp.save(plain.state_dict(), checkpoint_id=str(tmp_path / "plain"))
    with pytest.raises(LazyrichError, match="no lazyrich metadata"):
        plan_from_checkpoint(tmp_path / "plain")
