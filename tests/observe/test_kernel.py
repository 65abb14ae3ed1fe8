"""NTKs, kernel distance and kernel–target alignment against brute-force float64 references and the
single-neuron closed form (theory/exact_solutions.md §1.7)."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from lazyrich import MLP, Data, build, flow, train
from lazyrich.errors import LazyrichError
from lazyrich.models import forward
from lazyrich.observe import Observation
from lazyrich.observe.kernel import (empirical_ntk, ensemble_ntk, kernel_distance, kernel_target_alignment,
                                     mlp_ntk, ntk_row_bytes)

from . import observe_ref as ref

torch.set_num_threads(1)
F64 = torch.float64


def random_net(widths, activation, bias, E=2, seed=0, per_member_x=False, n=5):
    g = torch.Generator().manual_seed(seed)
    net = MLP(widths, activation=activation, bias=bias)
    params = {k: torch.randn(E, *s, generator=g, dtype=F64) for k, s in net.shapes().items()}
    mult = {f"W{l}": (torch.rand(E, generator=g, dtype=F64) + 0.5) if l % 2 else 0.7 for l in range(1, net.depth + 1)}
    lr = {k: torch.rand(E, generator=g, dtype=F64) + 0.2 for k in params}
    x = torch.randn(*((E,) if per_member_x else ()), n, widths[0], generator=g, dtype=F64)
    return net, params, mult, lr, x


CASES = [((3, 6, 1), "relu", False, False), ((3, 6, 2), "tanh", True, False), ((4, 5, 3), "gelu", True, True),
         ((3, 5, 4, 2), "tanh", True, False), ((2, 4, 3, 3, 1), "leaky_relu", False, True),
         ((3, 4, 2), "quadratic", False, False)]


@pytest.mark.parametrize("widths,activation,bias,per_member_x", CASES)
def test_mlp_ntk_matches_bruteforce_jacobian(widths, activation, bias, per_member_x):
    net, params, mult, lr, x = random_net(widths, activation, bias, per_member_x=per_member_x)
    for weights in (lr, None):
        K = mlp_ntk(net, params, x, mult, weights)
        c, n = widths[-1], x.shape[-2]
        assert K.shape == (2, n * c, n * c)
        for e in range(2):
            want = ref.ntk(net, params, x, mult, weights, e)
            np.testing.assert_allclose(K[e].numpy(), want, rtol=0, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("method", ["jacobian", "ntk_vp"])
def test_empirical_ntk_matches_bruteforce_with_and_without_chunking(method):
    net, params, mult, lr, x = random_net((3, 5, 4, 2), "tanh", True, E=1, n=7)
    want = ref.ntk(net, params, x, mult, lr, 0)
    fn = lambda p, xx: forward(net, {k: v.unsqueeze(0) for k, v in p.items()}, xx, mult)[0]  # noqa: E731
    single = {k: v[0] for k, v in params.items()}
    lr1 = {k: float(v[0]) for k, v in lr.items()}
    row = ntk_row_bytes(single, 2)
    for budget in (None, 3 * row, 7 * row + 5):  # one pass, one row at a time, uneven chunks
        K = empirical_ntk(fn, single, x, lr1, method=method, memory_budget_bytes=budget)
        np.testing.assert_allclose(K.numpy(), want, rtol=0, atol=1e-12 * np.abs(want).max())


def test_empirical_ntk_of_an_nn_module_matches_bruteforce():
    g = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    module = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).double()
    x = torch.randn(5, 3, generator=g, dtype=F64)
    params = {k: v.detach() for k, v in module.named_parameters()}
    fn = lambda p, xx: torch.func.functional_call(module, p, (xx,))  # noqa: E731
    lr = {k: 0.5 + i for i, k in enumerate(params)}
    rows = []
    for i in range(5):
        out = module(x[i:i + 1])[0]
        for a in range(2):
            gr = torch.autograd.grad(out[a], list(module.parameters()), retain_graph=True)
            rows.append(torch.cat([t.reshape(-1) * math.sqrt(lr[k]) for t, k in zip(gr, params)]))
    J = torch.stack(rows)
    want = (J @ J.T).numpy()
    for method in ("jacobian", "ntk_vp"):
        got = empirical_ntk(fn, params, x, lr, method=method).numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("method", ["jacobian", "ntk_vp"])
def test_empirical_ntk_with_a_scalar_parameter_and_flat_output(method):
    g = torch.Generator().manual_seed(4)
    p = {"w": torch.randn(3, generator=g, dtype=F64), "t": torch.tensor(0.7, dtype=F64)}
    x = torch.randn(6, 3, generator=g, dtype=F64)
    fn = lambda q, xx: q["t"] * torch.tanh(xx @ q["w"])  # noqa: E731  output [n]
    K = empirical_ntk(fn, p, x, lr={"w": 0.5, "t": 2.0}, method=method)
    u = torch.tanh(x @ p["w"])  # ∂f/∂t = u, ∂f/∂w = t (1 − u²) x
    jw = p["t"] * (1 - u**2).unsqueeze(1) * x
    want = 0.5 * jw @ jw.T + 2.0 * torch.outer(u, u)
    assert torch.allclose(K, want, rtol=0, atol=1e-14)


def test_empirical_ntk_rejects_bad_input():
    single = {"w": torch.ones(3, dtype=F64)}
    fn = lambda p, xx: xx @ p["w"]  # noqa: E731
    x = torch.ones(4, 3, dtype=F64)
    with pytest.raises(LazyrichError, match="memory_budget_bytes"):
        empirical_ntk(fn, single, x, memory_budget_bytes=10)
    with pytest.raises(LazyrichError, match="method"):
        empirical_ntk(fn, single, x, method="svd")
    with pytest.raises(LazyrichError, match="lacks"):
        empirical_ntk(fn, {**single, "v": torch.ones(1, dtype=F64)}, x, lr={"w": 1.0})
    # frozen tensors drop out: lr 0 on the only tensor is an error, on a second one changes nothing
    K = empirical_ntk(fn, single, x)
    np.testing.assert_allclose(K.numpy(), (x @ x.T).numpy(), rtol=0, atol=1e-14)


MEMORY_PROBE = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from lazyrich.observe.kernel import empirical_ntk, ntk_row_bytes

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    def peak_of(run):  # VmHWM reset to the current RSS (Linux clear_refs 5), then the peak growth
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = status("VmRSS")
        out = run()
        return status("VmHWM") - base, out

    budget = int(sys.argv[1])
    g = torch.Generator().manual_seed(0)
    d, h, n = 100, 600, 200
    p = {"W": torch.randn(h, d, generator=g, dtype=torch.float64) / d**0.5,
         "a": torch.randn(h, generator=g, dtype=torch.float64) / h**0.5}
    fn = lambda q, x: (torch.tanh(x @ q["W"].T) @ q["a"]).unsqueeze(-1)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    tiny = {"W": torch.ones(2, 3, dtype=torch.float64), "a": torch.ones(2, dtype=torch.float64)}
    for method in ("jacobian", "ntk_vp"):
        empirical_ntk(fn, tiny, torch.ones(2, 3, dtype=torch.float64), method=method)  # load torch.func machinery
        calibration, _ = peak_of(lambda: torch.ones(budget // 8, dtype=torch.float64))  # the probe reads a known block
        chunked, K1 = peak_of(lambda: empirical_ntk(fn, p, x, method=method, memory_budget_bytes=budget, jvp_batch=2))
        unchunked, K2 = peak_of(lambda: empirical_ntk(fn, p, x, method=method, memory_budget_bytes=None, jvp_batch=2))
        err = float((K1 - K2).abs().max()) / float(K2.abs().max())
        print(method, n * ntk_row_bytes(p, 1), calibration, chunked, unchunked, err)
        del K1, K2
""")


def test_empirical_ntk_stays_within_memory_budget():
    """Peak RSS growth of a chunked run under a 16 MiB budget where the unchunked Jacobian needs 92 MiB
    (a fresh process). Before each method the probe must read a known 16 MiB block exactly; afterwards
    the same method runs unchunked to show the probe sees a full Jacobian."""
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak RSS")
    budget = 16 * 2**20
    # a fixed mmap threshold makes glibc return every freed large block, so RSS tracks live memory
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(budget)], capture_output=True, text=True,
                         env=env, timeout=180)
    assert out.returncode == 0, out.stderr
    for line in out.stdout.splitlines():
        m, *vals = line.split()
        full, calibration, chunked, unchunked, rel = (float(v) for v in vals)
        print(m, f"peak {chunked / 2**20:.2f} MiB under a {budget / 2**20:.0f} MiB budget; "
                 f"unchunked {unchunked / 2**20:.1f} MiB (Jacobian {full / 2**20:.1f} MiB)")
        assert abs(calibration - budget) < 0.05 * budget, m  # the probe reads a known block exactly
        assert full > 4 * budget, m  # the unchunked Jacobian would not fit
        assert chunked <= budget + 200**2 * 8, (m, chunked / budget)  # + the output kernel
        assert unchunked > 0.95 * full, m  # the probe does see a full Jacobian
        assert rel < 1e-13, m


def test_kernel_distance_and_alignment_against_direct_sums():
    g = torch.Generator().manual_seed(1)
    K0, K1 = torch.randn(3, 8, 8, generator=g, dtype=F64), torch.randn(3, 8, 8, generator=g, dtype=F64)
    S = kernel_distance(K0, K1)
    for e in range(3):
        assert abs(float(S[e]) - ref.kernel_distance(K0[e].numpy(), K1[e].numpy())) < 1e-14
    assert float(kernel_distance(K0[0], 3.7 * K0[0]).abs()) < 1e-14  # scale invariant
    A = torch.randn(2, 8, 3, generator=g, dtype=F64)
    K = A @ A.transpose(-1, -2)  # PSD, n·c = 8 with n = 4, c = 2
    y = torch.randn(2, 4, 2, generator=g, dtype=F64)
    for centered in (False, True):
        got = kernel_target_alignment(K, y, centered)
        for e in range(2):
            k, v = K[e].numpy(), y[e].numpy()
            if centered:
                H = np.kron(np.eye(4) - np.ones((4, 4)) / 4, np.eye(2))
                k, v = H @ k @ H, v - v.mean(0)
            yy = np.outer(v.reshape(-1), v.reshape(-1))
            want = np.sum(k * yy) / (np.linalg.norm(k) * np.linalg.norm(yy))
            assert abs(float(got[e]) - want) < 1e-13
    # yyᵀ is perfectly aligned with itself
    v = y.reshape(2, 8)
    assert torch.allclose(kernel_target_alignment(v.unsqueeze(-1) * v.unsqueeze(-2), y), torch.ones(2, dtype=F64))
    with pytest.raises(LazyrichError, match="must match"):
        kernel_target_alignment(K, y[:, :3])


def test_kernel_distance_observer_reuses_init_kernel_and_matches_reference():
    net = MLP((4, 6, 1), activation="relu")
    g = torch.Generator().manual_seed(2)
    x = torch.randn(10, 4, generator=g, dtype=F64)
    data = Data(x, torch.sin(x[:, :1]))
    ens = build(net, [{"seed": 0, "lr": 0.2}, {"seed": 1, "lr": 0.05}], scheme="mup")
    from lazyrich.observe.kernel import KernelDistance
    run = train(ens, data, 30, record=[0, 10, 30], observers=[KernelDistance(weights="lr"), KernelDistance(weights="unit")])
    r = run.records()
    s = r[r.observable == "kernel_distance"]
    assert np.abs(s[s.step == 0].value).max() < 1e-14
    K0 = {w: ensemble_ntk(ens, run.params0, x, w) for w in ("lr", "unit")}
    Kt = {w: ensemble_ntk(run.ens, run.ens.params, x, w) for w in ("lr", "unit")}
    last = s[s.step == 30].value.to_numpy()  # two observers: lr rows first, then unit rows
    for i, w in enumerate(("lr", "unit")):
        for e in range(2):
            want = ref.kernel_distance(ref.ntk(net, run.params0, x, ens.multipliers, ens.lr if w == "lr" else None, e),
                                       ref.ntk(net, run.ens.params, x, ens.multipliers, ens.lr if w == "lr" else None, e))
            assert abs(last[2 * i + e] - want) < 1e-12
            assert abs(float(kernel_distance(K0[w][e], Kt[w][e])) - want) < 1e-12
    assert last[0] != pytest.approx(last[2], abs=1e-6)  # μP lrs differ per layer: the weighting matters


class RecordWeights:
    """Records (a, w) next to S, so the closed form sees the same trajectory."""

    name = "weights"

    def __call__(self, st):
        yield Observation("a", "", st.params["W2"][:, 0, 0])
        yield Observation("w", "", st.params["W1"][:, 0, :])


@pytest.mark.parametrize("delta,table", [(4.0, 0.0015), (0.0, 0.2000), (-2.0, 0.7133)])
def test_single_neuron_kernel_distance_matches_theory(delta, table):
    """Kunin Fig. 3 setup (whitened X = I₂, β* = (0, 1), β₀ = (−1, 0), η = 1), gradient flow to t = 20:
    S(0, 20) from the reference table, and the closed form of §1.7 at every recorded time."""
    net = MLP((2, 1, 1), activation="linear")
    ens = build(net, [{"seed": 0}], scheme="sp", lr=1.0, loss_scale=1.0)  # ½Σ over n = 2 = 1·mean
    a0 = math.sqrt((delta + math.sqrt(delta**2 + 4)) / 2)
    ens = ens.with_params({"W1": torch.tensor([[[-1.0 / a0, 0.0]]], dtype=F64), "W2": torch.tensor([[[a0]]], dtype=F64)})
    data = Data(torch.eye(2, dtype=F64), torch.tensor([[0.0], [1.0]], dtype=F64))
    times = [0.0, 1.0, 5.0, 20.0]

    run = flow(ens, data, times, observers=["kernel_distance", RecordWeights()],
               rtol=1e-11, atol=1e-13)
    r = run.records()
    get = lambda name: r[r.observable == name].sort_values(["step", "index"])  # noqa: E731
    S, a_t = get("kernel_distance").value.to_numpy(), get("a").value.to_numpy()
    w_t = get("w").value.to_numpy().reshape(len(times), 2)
    assert abs(S[-1] - table) < 6e-5  # table printed to 4 decimals
    # §1.7 in (a, w): tr(M0 Mt) = d a0² a² + a0²‖w‖² + a²‖w0‖² + (w0·w)², ‖M‖² = d a⁴ + 2a²‖w‖² + ‖w‖⁴
    w0 = np.array([-1.0 / a0, 0.0])
    nm = lambda aa, ww: math.sqrt(2 * aa**4 + 2 * aa**2 * ww @ ww + (ww @ ww) ** 2)  # noqa: E731
    for k in range(1, len(times)):
        a, w = a_t[k], w_t[k]
        tr = 2 * a0**2 * a**2 + a0**2 * w @ w + a**2 * w0 @ w0 + (w0 @ w) ** 2
        assert abs(S[k] - (1 - tr / (nm(a0, w0) * nm(a, w)))) < 1e-12
