"""attention_rows for every head (a capture's case) takes one product per KV head instead of copying
each KV head's keys per query head: the same rows as the per-head path, head by head."""

import pytest
import torch

from headscope.attention import attention_rows


@pytest.mark.parametrize("n_heads,n_kv,softcap,window", [(8, 2, None, None), (14, 2, None, 5), (6, 6, 30.0, None),
                                                         (9, 3, None, None)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_all_heads_in_one_product_per_kv_head_equal_the_per_head_rows(n_heads, n_kv, softcap, window, dtype):
    gen = torch.Generator().manual_seed(n_heads)
    q = torch.randn(n_heads, 3, 16, generator=gen).to(dtype)
    k = torch.randn(n_kv, 40, 16, generator=gen).to(dtype)
    kw = dict(scaling=0.25, query_positions=torch.tensor([37, 38, 39]), sliding_window=window, softcap=softcap)
    every = attention_rows(q, k, **kw)  # heads=None: the grouped product
    one_by_one = attention_rows(q, k, heads=list(range(n_heads)), **kw)  # the per-head path DySCO takes
    torch.testing.assert_close(every, one_by_one, rtol=1e-5, atol=1e-6)
    # a head's rows come from its own KV head (transformers' repeat_kv layout): head h reads h // group
    group = n_heads // n_kv
    alone = attention_rows(q[group:group + 1], k[1:2] if n_kv > 1 else k, **kw)
    torch.testing.assert_close(every[group:group + 1], alone, rtol=1e-5, atol=1e-6)


def test_a_query_slice_that_is_not_contiguous_gives_the_same_rows():
    q = torch.randn(8, 5, 16)
    k = torch.randn(2, 30, 16)
    kw = dict(scaling=0.25, query_positions=torch.tensor([29]))
    torch.testing.assert_close(attention_rows(q[:, -1:], k, **kw), attention_rows(q[:, -1:].contiguous(), k, **kw))
