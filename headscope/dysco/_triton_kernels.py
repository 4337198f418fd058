"""The Triton kernels of :mod:`headscope.dysco.fused_decode` (read that module's docstring first).

Triton's language, not typed Python: mypy skips this module (``pyproject.toml``), and only
:mod:`headscope.dysco.fused_decode` imports it, on first use, so headscope runs without Triton.
"""

import triton
import triton.language as tl

__all__ = ["combine_kernel", "split_kernel"]


@triton.jit
def split_kernel(q_ptr, k_ptr, v_ptr, mask_ptr, acc_ptr, max_ptr, sum_ptr,
                  sq_b, sq_h, sk_b, sk_h, sk_n, sv_b, sv_h, sv_n, sm_b,
                  n_kv, group, n_splits, split, scaling, softcap,
                  HAS_SOFTCAP: tl.constexpr, IEEE: tl.constexpr, GP: tl.constexpr, D: tl.constexpr,
                  BLOCK_N: tl.constexpr):
    pid = tl.program_id(0)  # sequence * n_kv + KV head
    part = tl.program_id(1)  # which split of the keys
    b = pid // n_kv
    kv = pid % n_kv
    g = tl.arange(0, GP)
    d = tl.arange(0, D)
    rows = g < group
    q = tl.load(q_ptr + b * sq_b + (kv * group + g)[:, None] * sq_h + d[None, :], mask=rows[:, None], other=0.0)
    running_max = tl.full([GP], float("-inf"), tl.float32)
    running_sum = tl.zeros([GP], tl.float32)
    acc = tl.zeros([GP, D], tl.float32)
    start = part * split
    for offset in range(0, split, BLOCK_N):
        n = start + offset + tl.arange(0, BLOCK_N)
        k = tl.load(k_ptr + b * sk_b + kv * sk_h + n[:, None] * sk_n + d[None, :])
        if IEEE:
            s = tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            s = tl.dot(q, tl.trans(k))
        s = s * scaling
        if HAS_SOFTCAP:  # softcap * tanh(s / softcap), tanh written with a sigmoid
            s = softcap * (2.0 * tl.sigmoid(2.0 * s / softcap) - 1.0)
        s = s + tl.load(mask_ptr + b * sm_b + n)[None, :]
        new_max = tl.maximum(running_max, tl.max(s, 1))
        # a tile (or a whole split) can be fully masked: keep exp() away from -inf - -inf
        safe = tl.where(new_max == float("-inf"), 0.0, new_max)
        p = tl.exp(s - safe[:, None])
        alpha = tl.exp(running_max - safe)
        running_sum = running_sum * alpha + tl.sum(p, 1)
        v = tl.load(v_ptr + b * sv_b + kv * sv_h + n[:, None] * sv_n + d[None, :])
        if IEEE:
            pv = tl.dot(p.to(v.dtype), v, input_precision="ieee")
        else:
            pv = tl.dot(p.to(v.dtype), v)
        acc = acc * alpha[:, None] + pv
        running_max = new_max
    base = pid * n_splits + part
    tl.store(max_ptr + base * GP + g, running_max)
    tl.store(sum_ptr + base * GP + g, running_sum)
    tl.store(acc_ptr + (base * GP + g)[:, None] * D + d[None, :], acc)

@triton.jit
def combine_kernel(acc_ptr, max_ptr, sum_ptr, out_ptr, so_b, so_h, n_kv, group, n_splits,
                   GP: tl.constexpr, D: tl.constexpr):
    # one program per (sequence, query head): the splits' partial results of that head only, so
    # the padding rows of the GQA group are never read and the programs run in parallel
    pid = tl.program_id(0)
    bk = pid // group  # sequence * n_kv + KV head
    g = pid % group
    b = bk // n_kv
    kv = bk % n_kv
    d = tl.arange(0, D)
    peak = float("-inf")
    for part in range(0, n_splits):
        peak = tl.maximum(peak, tl.load(max_ptr + (bk * n_splits + part) * GP + g))
    safe = tl.where(peak == float("-inf"), 0.0, peak)
    total = 0.0
    out = tl.zeros([D], tl.float32)
    for part in range(0, n_splits):
        row = (bk * n_splits + part) * GP + g
        w = tl.exp(tl.load(max_ptr + row) - safe)
        total += w * tl.load(sum_ptr + row)
        out += w * tl.load(acc_ptr + row * D + d)
    out = out / total
    tl.store(out_ptr + b * so_b + (kv * group + g) * so_h + d, out.to(out_ptr.dtype.element_ty))
