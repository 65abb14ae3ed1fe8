"""The fused Triton step (`kernel="triton"`) against the reference PyTorch step, run on CPU in Triton's
interpreter (TRITON_INTERPRET=1; the interpreter computes tl.dot as an fp32 numpy matmul, so only the
fp32 semantics are checked here). Per step: loss and new parameters within 1e-5 relative of the fp32
PyTorch step (fused pass + optim.step), and the update itself within 1e-4 of a float64 step (so a wrong
gradient cannot hide behind a small learning rate). Tiny shapes: the interpreter is slow.
GPU checks (precision modes against float64, auto-selection) skip without CUDA."""
import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (the `gpu` extra): the Triton kernel cannot be tested")

import lazyrich  # noqa: E402
from lazyrich.dynamics import fused, optim, triton_step  # noqa: E402
from lazyrich.errors import LazyrichError  # noqa: E402
from lazyrich.models.activations import NAMES  # noqa: E402
from lazyrich.observe.base import Data  # noqa: E402


@pytest.fixture(autouse=True)
def interpreter(monkeypatch):
    """Run the kernels in Triton's CPU interpreter (the kernel module is re-imported to match)."""
    if not torch.cuda.is_available():
        monkeypatch.setenv("TRITON_INTERPRET", "1")


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _ensemble(act="relu", c=1, E=4, d=7, h=6, decay=True, dtype=torch.float32, **extra):
    rows = [{"seed": s, "gamma": 0.5 * (1 + s), "lr": 0.2, "weight_decay": 0.05 * s if decay else 0.0, **extra} for s in range(E)]
    return lazyrich.build(lazyrich.MLP((d, h, c), act), rows, scheme="mup", dtype=dtype, device=DEVICE)


def _reference_step(ens, params, x, y, factor, decoupled=False, dtype=torch.float32):
    """fused.two_layer_loss_and_grads + optim.step: the PyTorch GD step, in `dtype`."""
    cast = {k: v.to(dtype) for k, v in params.items()}
    mult = {k: (v.to(dtype) if torch.is_tensor(v) else v) for k, v in ens.multipliers.items()}
    loss, grads = fused.two_layer_loss_and_grads(cast, x.to(dtype), y.to(dtype), mult, ens.net.activation, ens.loss_scale)
    lr = {k: optim._col(v.to(dtype) * factor, cast[k]) for k, v in ens.lr.items()}
    wd = {k: v.to(dtype) for k, v in ens.weight_decay.items()}
    spec = optim.OptimizerSpec(weight_decay_mode="decoupled" if decoupled else "coupled")
    new, _ = optim.step(spec, cast, grads, {}, lr, wd)
    return loss, new


def _rel(got, want):
    return float((got.double() - want.double()).abs().max() / want.double().abs().max().clamp(min=1e-30))


def _check_step(ens, x, y, factor=0.7, decoupled=False):
    loss, new = triton_step.prepare(ens, decoupled)(ens.params, x, y, factor, None)
    want_loss, want = _reference_step(ens, ens.params, x, y, factor, decoupled)
    _, exact = _reference_step(ens, ens.params, x, y, factor, decoupled, torch.float64)
    assert _rel(loss, want_loss) <= 1e-5
    for k in ("W1", "W2"):
        assert _rel(new[k], want[k]) <= 1e-5, k
        step = exact[k] - ens.params[k].double()
        assert float(step.abs().max()) > 0, f"{k} did not move: the check would be empty"
        assert _rel(new[k].double() - ens.params[k].double(), step) <= 1e-4, f"{k} update"


@pytest.mark.parametrize("act,c", [(a, 1) for a in NAMES] + [("tanh", 3), ("relu", 3)])
def test_step_matches_pytorch_every_activation(act, c):
    """37 samples = two tiles of 32 (the second padded); per-member γ multipliers, lrs and decays; factor 0.7."""
    ens = _ensemble(act, c)
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(37, 7, generator=gen), torch.randn(37, c, generator=gen)
    _check_step(ens, x.to(DEVICE), y.to(DEVICE))


def test_step_per_member_inputs_decoupled_decay_and_wide_layers():
    """x [E, n, d] per member, decoupled decay, h and d beyond one 16-block (padding in both)."""
    ens = _ensemble("tanh", 2, E=3, d=19, h=21)
    gen = torch.Generator().manual_seed(4)
    x, y = torch.randn(3, 20, 19, generator=gen), torch.randn(3, 20, 2, generator=gen)
    _check_step(ens, x.to(DEVICE), y.to(DEVICE), factor=1.0, decoupled=True)


def test_inactive_members_keep_their_weights_bitwise():
    ens = _ensemble()
    gen = torch.Generator().manual_seed(5)
    x, y = torch.randn(16, 7, generator=gen).to(DEVICE), torch.randn(16, 1, generator=gen).to(DEVICE)
    params = {k: v.clone() for k, v in ens.params.items()}
    params["W1"][2] = float("nan")  # a diverged member: NaN weights must not leak into the others
    active = torch.tensor([True, True, False, True], device=DEVICE)
    loss, new = triton_step.prepare(ens)(params, x, y, 1.0, active)
    assert torch.equal(new["W1"][2].isnan(), params["W1"][2].isnan()) and torch.equal(new["W2"][2], params["W2"][2])
    live = [0, 1, 3]
    want_loss, want = _reference_step(ens.select(live), {k: v[live] for k, v in params.items()}, x, y, 1.0)
    assert _rel(loss[live], want_loss) <= 1e-5
    assert all(_rel(new[k][live], want[k]) <= 1e-5 for k in ("W1", "W2"))


def _train_both(ens, data, steps, **kw):
    return (lazyrich.train(ens, data, steps, kernel="fused", **kw),
            lazyrich.train(ens, data, steps, kernel="triton", **kw))


def _data(n=24, d=7, c=1, seed=6):
    gen = torch.Generator().manual_seed(seed)
    return Data(torch.randn(n, d, generator=gen).to(DEVICE), torch.randn(n, c, generator=gen).to(DEVICE))


def test_train_minibatch_sgd_with_schedule_matches_fused():
    """SGD on minibatches of 8 (the same batch order), cosine schedule, weight decay: records and final
    weights of kernel="triton" within fp32 rounding of kernel="fused" after 6 steps."""
    ens = _ensemble("gelu")
    kw = dict(optimizer=lazyrich.OptimizerSpec(kind="sgd", batch_size=8), record=[0, 3, 6],
              schedule=lazyrich.Schedule(decay="cosine"), observers=("loss",))
    ref, got = _train_both(ens, _data(), 6, **kw)
    a, b = ref.records(config=False), got.records(config=False)
    assert len(a) == len(b) == 12
    assert _rel(torch.tensor(b.value.to_numpy()), torch.tensor(a.value.to_numpy())) <= 1e-5
    assert all(_rel(got.ens.params[k], ref.ens.params[k]) <= 1e-5 for k in ("W1", "W2"))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy (the interpreter) on the blown-up member
def test_diverging_member_is_frozen_at_its_step_and_the_others_are_unaffected():
    """Member 1's learning rate makes it blow up: both kernels flag the same step, freeze it at the
    same weights, and the other members match a run without it."""
    rows = [{"seed": s, "tau": 1.0, "delta": 0.0, "lr": lr} for s, lr in enumerate([0.05, 40.0, 0.05])]
    ens = lazyrich.build(lazyrich.MLP((5, 4, 1), "relu"), rows, init="kunin", dtype=torch.float32, device=DEVICE)
    data = _data(n=16, d=5, seed=7)
    ref, got = _train_both(ens, data, 8, record=[0, 8], observers=("loss",), check_every=4)
    assert ref.diverged_step[1] >= 1 and list(got.diverged_step) == list(ref.diverged_step) == [-1, ref.diverged_step[1], -1]
    frozen = {k: got.ens.params[k][1] for k in ("W1", "W2")}
    assert all(torch.isfinite(v).all() and _rel(v, ref.ens.params[k][1]) <= 1e-5 for k, v in frozen.items())
    alone = lazyrich.train(ens.select([0, 2]), data, 8, kernel="triton", record=[0, 8], observers=("loss",))
    assert all(torch.equal(got.ens.params[k][[0, 2]], alone.ens.params[k]) for k in ("W1", "W2"))


def test_unsupported_requests_say_what_to_use(monkeypatch):
    data = _data()
    deep = lazyrich.build(lazyrich.MLP((7, 5, 5, 1), "relu"), [{"seed": 0, "lr": 0.1}], scheme="mup", dtype=torch.float32,
                          device=DEVICE)
    cases = [(deep, {}, "two-layer nets"), (_ensemble(dtype=torch.float64), {}, "float32"),
             (_ensemble(), {"optimizer": "adam"}, "use kernel='fused'"),
             (_ensemble(), {"precision": "fp16"}, "choose one of fp32, tf32, 3xtf32")]
    for ens, kw, message in cases:
        with pytest.raises(LazyrichError, match=message):
            lazyrich.train(ens, data, 1, kernel="triton", **kw)
    with pytest.raises(LazyrichError, match="applies to kernel='triton' only"):
        lazyrich.train(_ensemble(), data, 1, kernel="fused", precision="tf32")
    if DEVICE == "cpu":
        monkeypatch.delenv("TRITON_INTERPRET")
        with pytest.raises(LazyrichError, match="needs a CUDA device.*use kernel='fused' on CPU"):
            lazyrich.train(_ensemble(), data, 1, kernel="triton")
        auto = lazyrich.train(_ensemble(), data, 2, observers=("loss",))  # "auto" on CPU stays the PyTorch path
        assert auto.diverged_step.tolist() == [-1] * 4


@pytest.mark.parametrize("act", ["gelu"])
def test_compiles_for_h100_with_the_requested_precision(act, monkeypatch):
    """Ahead-of-time compilation for sm_90 with Triton's bundled ptxas (no GPU needed): a cubin in every
    precision; fp32 ("ieee") uses no tensor-core instruction, tf32 does, and 3xtf32 issues about three
    times as many (the hi·hi + hi·lo + lo·hi split) — the precision argument reaches the compiled code."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    mma = {}
    for precision in triton_step.PRECISIONS:
        out = triton_step.compile_for_gpu(h=50, d=10, act=act, precision=precision)
        assert len(out.asm["cubin"]) > 0
        mma[precision] = out.asm["ptx"].count("mma.sync")
    assert mma["fp32"] == 0 and mma["tf32"] > 0 and 2 * mma["tf32"] <= mma["3xtf32"] <= 4 * mma["tf32"], mma


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (precision modes run on tensor cores)")


@cuda
@pytest.mark.parametrize("precision,tol", [("fp32", 1e-5), ("3xtf32", 1e-5), ("tf32", 5e-3)])
def test_precision_modes_on_cuda(precision, tol):
    """d = 100, h = 50, n = 1000 (Fig. 1 member shape): one step's loss and update against float64; tf32
    rounds inputs to 10 mantissa bits (≈ 5e-4 relative per product), 3xtf32 recovers fp32 accuracy."""
    ens = _ensemble("relu", 1, E=8, d=100, h=50, decay=False)
    gen = torch.Generator().manual_seed(8)
    x, y = torch.randn(1000, 100, generator=gen).to(DEVICE), torch.randn(1000, 1, generator=gen).to(DEVICE)
    loss, new = triton_step.prepare(ens, precision=precision)(ens.params, x, y, 1.0, None)
    want_loss, exact = _reference_step(ens, ens.params, x, y, 1.0, dtype=torch.float64)
    assert _rel(loss, want_loss) <= tol
    for k in ("W1", "W2"):
        assert _rel(new[k].double() - ens.params[k].double(), exact[k] - ens.params[k].double()) <= 10 * tol, k


@cuda
def test_auto_picks_triton_on_cuda():
    ens, data = _ensemble(), _data()
    auto = lazyrich.train(ens, data, 3, record=[3], observers=("loss",))
    explicit = lazyrich.train(ens, data, 3, kernel="triton", record=[3], observers=("loss",))
    assert all(torch.equal(auto.ens.params[k], explicit.ens.params[k]) for k in ("W1", "W2"))
