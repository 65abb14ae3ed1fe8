"""The Triton kernel of `triton_step` (imported lazily: this module imports triton at the top).

One program per member. It loads the member's W [h, d] and A [c, h] once, walks the samples in
tiles of BLOCK_N and keeps everything of size h × n in registers: Z = X Wᵀ (tl.dot), H = σ(Z), the
output F = H Aᵀ, the residual, and the two gradient accumulators ∇A [c, h] and ∇W [h, d]
(∇W += dZᵀ X, tl.dot). After the last tile it applies the GD update (per-member learning rates ×
schedule factor, coupled or decoupled weight decay, divergence mask) and writes the new weights and
the loss. No atomics: a member's sum over tiles runs in one fixed order, so results are deterministic.

The two big products (4·n·d·h FLOP per step) go through tl.dot with `input_precision` ("ieee",
"tf32", "tf32x3"); the small ones over the c outputs are exact fp32 FMA in every mode.
"""
import triton
import triton.language as tl

LINEAR, RELU, LEAKY_RELU, TANH, GELU, QUADRATIC = range(6)
ACT_CODES = {"linear": LINEAR, "relu": RELU, "leaky_relu": LEAKY_RELU, "tanh": TANH, "gelu": GELU, "quadratic": QUADRATIC}


@triton.jit
def _add(a, b):
    return a + b


@triton.jit
def _sum(x, axis: tl.constexpr):
    # tl.sum and tl.zeros are jit helpers of triton.language.standard, bound to the interpreter or the
    # compiler when triton is first imported; builtins + our own helpers follow TRITON_INTERPRET here
    return tl.reduce(x, axis, _add)


@triton.jit
def _act_and_derivative(z, ACT: tl.constexpr, SLOPE: tl.constexpr):
    if ACT == 0:
        hid = z
        der = tl.full(z.shape, 1.0, tl.float32)
    elif ACT == 1:
        hid = tl.where(z > 0, z, 0.0)
        der = tl.where(z > 0, 1.0, 0.0)
    elif ACT == 2:
        hid = tl.where(z > 0, z, z * SLOPE)
        der = tl.where(z > 0, 1.0, SLOPE)
    elif ACT == 3:
        # tanh from one exp, saturating cleanly: exp overflow gives 1, underflow gives −1
        hid = 1.0 - 2.0 / (tl.exp(2.0 * z) + 1.0)
        der = 1.0 - hid * hid
    elif ACT == 4:
        cdf = 0.5 * (1.0 + tl.math.erf(z * 0.7071067811865476))
        hid = z * cdf
        der = cdf + z * tl.exp(-0.5 * z * z) * 0.3989422804014327
    else:
        hid = z * z
        der = 2.0 * z
    return hid, der


@triton.jit
def two_layer_gd_step(W, A, X, Y, W_OUT, A_OUT, LOSS, MW, MA, LRW, LRA, WDW, WDA, ACTIVE,
                      n, d, h, stride_xe, stride_ye, grad_scale, loss_scale, factor,
                      C: tl.constexpr, ACT: tl.constexpr, SLOPE: tl.constexpr, PRECISION: tl.constexpr,
                      DECOUPLED: tl.constexpr, HAS_ACTIVE: tl.constexpr,
                      BLOCK_N: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_C: tl.constexpr):
    e = tl.program_id(0)
    offs_h = tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_D)
    offs_c = tl.arange(0, BLOCK_C)
    mh, md, mc = offs_h < h, offs_d < d, offs_c < C
    w_ptrs = e * h * d + offs_h[:, None] * d + offs_d[None, :]
    a_ptrs = e * C * h + offs_c[:, None] * h + offs_h[None, :]
    mask_w = mh[:, None] & md[None, :]
    mask_a = mc[:, None] & mh[None, :]
    mw = tl.load(MW + e)
    ma = tl.load(MA + e)
    # multipliers on the small tensors, as dynamics.fused; W itself is re-read for the update (from
    # cache) rather than kept live through the loop beside ∇W: fewer registers
    w_eff = tl.load(W + w_ptrs, mask=mask_w, other=0.0) * mw
    a_eff = tl.load(A + a_ptrs, mask=mask_a, other=0.0) * ma
    grad_w = tl.full((BLOCK_H, BLOCK_D), 0.0, tl.float32)
    grad_a = tl.full((BLOCK_C, BLOCK_H), 0.0, tl.float32)
    sq = tl.full((BLOCK_N,), 0.0, tl.float32)
    for start in range(0, n, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        mn = offs_n < n
        x = tl.load(X + e * stride_xe + offs_n[:, None] * d + offs_d[None, :], mask=mn[:, None] & md[None, :], other=0.0)
        z = tl.dot(x, tl.trans(w_eff), input_precision=PRECISION)  # [BLOCK_N, BLOCK_H]
        hid, der = _act_and_derivative(z, ACT, SLOPE)
        f = _sum(hid[:, None, :] * a_eff[None, :, :], axis=2)  # [BLOCK_N, BLOCK_C]
        mask_y = mn[:, None] & mc[None, :]
        y = tl.load(Y + e * stride_ye + offs_n[:, None] * C + offs_c[None, :], mask=mask_y, other=0.0)
        r = tl.where(mask_y, f - y, 0.0)  # padded samples and outputs contribute nothing
        sq += _sum(r * r, axis=1)
        g = r * grad_scale  # (2s/n)(f − y)
        grad_a += _sum(g[:, :, None] * hid[:, None, :], axis=0)
        dz = _sum(g[:, :, None] * a_eff[None, :, :], axis=1) * der  # [BLOCK_N, BLOCK_H]
        grad_w += tl.dot(tl.trans(dz), x, input_precision=PRECISION)
    grad_w = grad_w * mw
    w = tl.load(W + w_ptrs, mask=mask_w, other=0.0)
    a = tl.load(A + a_ptrs, mask=mask_a, other=0.0)
    grad_a = grad_a * ma
    lr_w = tl.load(LRW + e) * factor
    lr_a = tl.load(LRA + e) * factor
    wd_w = tl.load(WDW + e)
    wd_a = tl.load(WDA + e)
    if DECOUPLED:
        w_new = w * (1.0 - lr_w * wd_w) - lr_w * grad_w
        a_new = a * (1.0 - lr_a * wd_a) - lr_a * grad_a
    else:
        w_new = w - lr_w * (grad_w + wd_w * w)
        a_new = a - lr_a * (grad_a + wd_a * a)
    if HAS_ACTIVE:  # a frozen member keeps its weights bit for bit
        live = tl.load(ACTIVE + e) != 0
        w_new = tl.where(live, w_new, w)
        a_new = tl.where(live, a_new, a)
    tl.store(W_OUT + w_ptrs, w_new, mask=mask_w)
    tl.store(A_OUT + a_ptrs, a_new, mask=mask_a)
    tl.store(LOSS + e, loss_scale * _sum(sq, axis=0) / n)
