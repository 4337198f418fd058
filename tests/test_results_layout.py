"""results.nc follows xarray's conventions: a `decoding` dim (not `method`, which `.sel` takes for
its fill method), one-value axes as scalar coordinates, exact intervals per cell; the one-liners
of docs/ablate.md run as written; files of the older layout open the same way.

One demo-shaped grid (one length, one strength; random-weight Llama, real SmolLM2 tokenizer).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import tiny_llama

DOC = Path(__file__).resolve().parents[1] / "docs" / "ablate.md"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    from headscope.ablate import AblationConfig, run_ablation
    from headscope.models import load_tokenizer, wrap_model

    tok = load_tokenizer("smollm2-135m")
    lm = wrap_model(tiny_llama(vocab_size=len(tok), max_position_embeddings=2048), tok, name="tiny")
    where = tmp_path_factory.mktemp("grid")
    config = AblationConfig.from_dict({
        "models": ["tiny"], "tasks": ["passkey"], "lengths": [200], "examples": 3,
        "methods": ["vanilla", "dysco", "random-heads"], "heads": ["random:2"], "strengths": [3],
        "max_new_tokens": 3, "dysco": {"context_warmup": 2}})
    run_ablation(config, where, lm=lm, progress=False, record_trace=False)
    return where


def _no_length_one_dims(value):
    if isinstance(value, (xr.DataArray, xr.Dataset)):
        assert all(size > 1 for size in value.sizes.values()), dict(value.sizes)


def test_results_follow_xarray_conventions(out):
    from headscope.ablate import load_results
    from headscope.stats import accuracy

    ds = load_results(out)
    assert ds["score"].dims == ("decoding", "example")
    assert ds["model"].item() == "tiny" and ds["length"].item() == 200 and ds["strength"].item() == "3"
    acc = ds["score"].mean("example")
    assert acc.dims == ("decoding",) and list(acc["decoding"].values) == ["vanilla", "dysco", "random-heads"]
    dysco = ds["score"].sel(decoding="dysco")
    exact = accuracy(dysco.values)
    cell = ds.sel(decoding="dysco")
    assert (float(cell["accuracy"]), float(cell["accuracy_lo"]), float(cell["accuracy_hi"])) == pytest.approx(
        (exact["mean"], exact["lo"], exact["hi"]))
    assert (ds["accuracy_lo"] < ds["accuracy_hi"]).all()  # never a point, even at n = 3


def _doc_lines() -> list[str]:
    text = DOC.read_text()
    block = re.search(r"In Python.*?```python\n(.*?)```", text, re.S)
    assert block, "docs/ablate.md lost its Python one-liners"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_doc_one_liners_run_as_written(out):
    lines = _doc_lines()
    assert any('sel(decoding="dysco")' in line for line in lines) and len(lines) >= 4
    scope: dict = {}
    for line in lines:
        code = line.replace('"runs/demo"', repr(str(out)))
        try:
            value = eval(compile(code, "docs/ablate.md", "eval"), scope)
        except SyntaxError:
            exec(compile(code, "docs/ablate.md", "exec"), scope)
            continue
        _no_length_one_dims(value)  # `.mean("example")` is an array over what was swept, not 8 deep


def test_results_of_the_older_layout_open_the_same_way(out, tmp_path):
    from headscope.ablate import load_results, summary_table
    from headscope.ablate.layout import to_grid

    new = load_results(out)
    old = to_grid(new)  # what headscope wrote before: every grid axis a dim, the methods on `method`
    assert "method" in old.dims and len(old["score"].dims) == 11
    old.to_netcdf(tmp_path / "results.nc", engine="scipy")
    back = load_results(tmp_path)
    xr.testing.assert_identical(back, new)
    assert summary_table(back).equals(summary_table(new))
    assert np.array_equal(back["score"].sel(decoding="vanilla").values, new["score"].sel(decoding="vanilla").values)
