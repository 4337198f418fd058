"""HeadSet: a ranked list of (layer, head) pairs that knows its granularity and where it came from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from headscope.cli import cli
from headscope.heads import (
    FORMAT_ID,
    HeadSet,
    compare,
    data_dir,
    list_published,
    published,
    random_heads,
    resolve_heads,
    same_model,
)
from headscope.models import Geometry


def geometry(name: str = "tiny", n_layers: int = 4, n_heads: int = 9, n_kv_heads: int = 3) -> Geometry:
    return Geometry(name=name, model_type="llama", n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads,
                    head_dim=8, max_context=128, has_chat_template=False,
                    layer_types=("full_attention",) * n_layers, sliding_window=None)


# Published shapes (layers, query heads, KV heads) from each model's config.json.
PUBLISHED_SHAPES = {
    "meta-llama/Llama-3.1-8B-Instruct": (32, 32, 8),
    "Qwen/Qwen3-8B": (36, 32, 8),
    "Qwen/Qwen3-4B": (36, 32, 8),
    "yaofu/llama-2-7b-80k": (32, 32, 32),
    "meta-llama/Llama-2-13b-hf": (40, 40, 40),
    "mistralai/Mistral-7B-Instruct-v0.2": (32, 32, 8),
    # Retrieval_Head's head_score files (model names as the repository gives them where no hub id is stated)
    "llama-2-13b-64k": (40, 40, 40),
    "Mistral-7B-v0.2-hf": (32, 32, 8),
    "mistralai/Mixtral-8x7B-v0.1": (32, 32, 8),
    "Qwen/Qwen1.5-14B": (40, 40, 40),
    "Qwen/Qwen1.5-14B-Chat": (40, 40, 40),
    "01-ai/Yi-6B-200K": (32, 32, 4),
}
WU_NAMES = ("llama-2-7b-80k", "llama-2-13b-64k", "mistral-7b-v0.2", "mixtral-8x7b-v0.1", "qwen1.5-14b",
            "qwen1.5-14b-chat", "yi-6b-200k")
# The top 10 the Retrieval_Head README prints (section "Directly load a results for Analysis"), as printed.
README_TOP10_LLAMA2_7B_80K = [((16, 19), 0.94), ((11, 15), 0.92), ((8, 26), 0.8), ((6, 9), 0.62), ((7, 12), 0.61),
                              ((17, 22), 0.56), ((11, 2), 0.46), ((6, 16), 0.44), ((19, 15), 0.42), ((21, 30), 0.4)]
WU_MIRROR = Path("/work/.mirror/nightdessert+Retrieval_Head/repo")

SAMPLE = HeadSet([(3, 8), (0, 1), (2, 4)], model="smollm2-135m", method="qrscore", scores=[0.9, 0.5, 0.25],
                 source="unit test", meta={"seed": 7, "task": "qa", "alpha": 0.5})


# -- the value itself ---------------------------------------------------------------------------

def test_headset_is_frozen_ordered_and_typed() -> None:
    assert list(SAMPLE) == [(3, 8), (0, 1), (2, 4)]
    assert len(SAMPLE) == 3 and (0, 1) in SAMPLE
    assert SAMPLE.layers == (0, 2, 3) and SAMPLE.max_layer == 3
    assert SAMPLE.top(2).heads == ((3, 8), (0, 1)) and SAMPLE.top(2).scores == (0.9, 0.5)
    with pytest.raises(AttributeError):
        SAMPLE.model = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        SAMPLE.meta["seed"] = 8  # type: ignore[index]
    assert hash(SAMPLE) == hash(HeadSet(SAMPLE.heads, model="smollm2-135m", method="qrscore",
                                        scores=[0.9, 0.5, 0.25], source="unit test"))


@pytest.mark.parametrize("kwargs, message", [
    (dict(heads=[(1, 2, 3)]), "must be a (layer, head) pair"),
    (dict(heads=[(1.5, 2)]), "Layer of head 0 must be an integer"),
    (dict(heads=[(True, 2)]), "must be an integer"),
    (dict(heads=[(1, 2)], granularity="key"), "'granularity' parameter must be 'query' or 'kv'. Got 'key'"),
    (dict(heads=[(1, 2)], scores=[0.1, 0.2]), "1 heads but 2 scores"),
    (dict(heads=[(1, 2)], meta={"x": [1]}), "'meta' must map str to str, int or float"),
])
def test_constructor_rejects_malformed_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        HeadSet(**kwargs)


def test_top_needs_k_within_the_set() -> None:
    with pytest.raises(ValueError, match=r"1 <= k <= 3 .* Got k=4"):
        SAMPLE.top(4)
    with pytest.raises(ValueError, match="empty head set has no max_layer"):
        HeadSet(()).max_layer


# -- own format ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["heads.json", "heads.yaml", "heads.yml"])
def test_save_load_round_trip(tmp_path: Path, name: str) -> None:
    path = SAMPLE.save(tmp_path / name)
    assert HeadSet.load(path) == SAMPLE
    kv = HeadSet([(0, 2)], granularity="kv", model="x")
    assert HeadSet.load(kv.save(tmp_path / ("kv-" + name))) == kv


def test_saved_json_has_the_documented_schema(tmp_path: Path) -> None:
    d = json.loads(SAMPLE.save(tmp_path / "h.json").read_text())
    assert d == {"format": FORMAT_ID, "model": "smollm2-135m", "method": "qrscore", "granularity": "query",
                 "heads": [[3, 8], [0, 1], [2, 4]], "scores": [0.9, 0.5, 0.25], "source": "unit test",
                 "meta": {"seed": 7, "task": "qa", "alpha": 0.5}}
    assert HeadSet.from_dict(SAMPLE.to_dict()) == SAMPLE


def test_from_dict_refuses_other_formats() -> None:
    with pytest.raises(ValueError, match="Expected a head set with format 'headscope.heads/1'. Got format 'x'"):
        HeadSet.from_dict({"format": "x", "heads": []})


def test_save_needs_a_known_suffix_and_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="saved as .json, .yaml or .yml"):
        SAMPLE.save(tmp_path / "h.txt")
    with pytest.raises(ValueError, match=r"'format' parameter must be one of .* Got 'csv'"):
        SAMPLE.save(tmp_path / "h.json", "csv")


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), max_size=20),
       st.sampled_from(["query", "kv"]))
def test_dict_round_trip_property(pairs: list[tuple[int, int]], granularity: str) -> None:
    hs = HeadSet(pairs, granularity=granularity, scores=[float(i) for i in range(len(pairs))])  # type: ignore[arg-type]
    assert HeadSet.from_dict(json.loads(json.dumps(hs.to_dict()))) == hs


# -- foreign formats ----------------------------------------------------------------------------

def test_reads_dysco_yaml_both_keys(tmp_path: Path) -> None:
    new = tmp_path / "llama3_8b.yaml"
    new.write_text('selected_heads: "[(17,24),(16,7), (0, 3)]"\ntop_k: 4096\nstrength: 2.0\n')
    old = tmp_path / "old.yaml"
    old.write_text('dysco_qrheads: "[(17,24),(16,7),(0,3)]"\ndysco_top_k: 4096\n')
    for path in (new, old):
        hs = HeadSet.load(path)
        assert hs.heads == ((17, 24), (16, 7), (0, 3)) and hs.granularity == "query" and hs.method == "qrscore"
        assert hs.source == str(path)


@pytest.mark.parametrize("payload", [
    "__import__('os').system('touch {marker}')",
    "[(1,2)] + [__import__('os').system('touch {marker}')]",
    "[(1, 2), (3, len('x'))]",
    "[(1,2),(3,4)]; import os",
])
def test_dysco_strings_are_parsed_never_evaluated(tmp_path: Path, payload: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(yaml.safe_dump({"selected_heads": payload.format(marker=marker)}))
    with pytest.raises(ValueError, match="never evaluates head strings"):
        HeadSet.load(path, "dysco")
    assert not marker.exists()


def test_reads_qrhead_yaml_and_bare_string(tmp_path: Path) -> None:
    cfg = tmp_path / "Llama-3.1-8B-Instruct_qr_head.yaml"
    cfg.write_text('attn_head_set: "14-22,13-16,14-28" # top16 qr heads\n'
                   'model_base_class: "Llama-3.1-8B-Instruct"\n'
                   'model_name_or_path: "meta-llama/Llama-3.1-8B-Instruct"\n')
    hs = HeadSet.load(cfg)
    assert hs.heads == ((14, 22), (13, 16), (14, 28)) and hs.model == "meta-llama/Llama-3.1-8B-Instruct"
    bare = tmp_path / "heads.txt"
    bare.write_text("8-21, 8-14,0-0\n")
    assert HeadSet.load(bare, model="m").heads == ((8, 21), (8, 14), (0, 0))
    assert HeadSet.load(bare, model="m").model == "m"
    bad = tmp_path / "bad.yaml"
    bad.write_text('attn_head_set: "8-21,eight-14"\n')
    with pytest.raises(ValueError, match="Not a QRHead head list"):
        HeadSet.load(bad)


def test_reads_retrieval_head_json_mean_ranked(tmp_path: Path) -> None:
    path = tmp_path / "llama-2-7b-80k.json"
    # One line, as the reference writes it; 1-1 and 0-1 tie at 0.5 and keep file order.
    path.write_text(json.dumps({"0-0": [0, 0, 0.3], "0-1": [0.5, 0.5, 0.5], "1-0": [1.0, 0.8, 0.9],
                                "1-1": [0, 1, 0.5]}))
    hs = HeadSet.load(path, model="yaofu/llama-2-7b-80k")
    assert hs.heads == ((1, 0), (0, 1), (1, 1), (0, 0))
    assert hs.scores == pytest.approx((0.9, 0.5, 0.5, 0.1))
    assert hs.method == "retrieval_score" and hs.meta["n_detections"] == 3 and hs.model == "yaofu/llama-2-7b-80k"
    empty = tmp_path / "empty.json"
    empty.write_text('{"0-0": []}')
    with pytest.raises(ValueError, match="Head '0-0' has no scores"):
        HeadSet.load(empty)


def test_reads_duo_attention_tsv_as_kv_heads(tmp_path: Path) -> None:
    path = tmp_path / "full_attention_heads.tsv"
    path.write_text("0.1\t0.9\t0.6\n0.95\t0.2\t0.5\n")
    hs = HeadSet.load(path)
    assert hs.granularity == "kv" and hs.heads == ((1, 0), (0, 1), (0, 2))
    assert hs.scores == (0.95, 0.9, 0.6) and hs.meta["n_kv_heads"] == 3
    assert HeadSet.load(path, threshold=0.92).heads == ((1, 0),)
    ragged = tmp_path / "ragged.tsv"
    ragged.write_text("0.1\t0.9\n0.95\n")
    with pytest.raises(ValueError, match="rectangular table"):
        HeadSet.load(ragged)


def test_unknown_content_and_format_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "mystery.yaml"
    path.write_text("hello: world\n")
    with pytest.raises(ValueError, match="Could not tell which head-set format"):
        HeadSet.load(path)
    with pytest.raises(ValueError, match=r"'format' parameter must be one of"):
        HeadSet.load(path, "pickle")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        HeadSet.load(broken)
    with pytest.raises(FileNotFoundError, match="No head-set file"):
        HeadSet.load(tmp_path / "absent.json")


@pytest.mark.parametrize("fmt, name", [("dysco", "d.yaml"), ("qrhead", "q.yaml"), ("retrieval_head", "r.json")])
def test_export_reads_back(tmp_path: Path, fmt: str, name: str) -> None:
    path = SAMPLE.save(tmp_path / name, fmt)
    back = HeadSet.load(path)
    assert back.heads == SAMPLE.heads
    if fmt == "retrieval_head":
        assert back.scores == SAMPLE.scores
    else:
        assert back.model == SAMPLE.model


def test_dysco_export_is_what_dysco_reads(tmp_path: Path) -> None:
    import ast

    cfg = yaml.safe_load(SAMPLE.save(tmp_path / "d.yaml", "dysco").read_text())
    # DySCO evaluates this string; literal_eval is the safe twin and must give the same pairs.
    assert ast.literal_eval(cfg["selected_heads"]) == [(3, 8), (0, 1), (2, 4)]


def test_export_refusals(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no scores"):
        HeadSet([(0, 1)]).save(tmp_path / "r.json", "retrieval_head")
    with pytest.raises(ValueError, match="lists query heads; convert this KV-head set"):
        HeadSet([(0, 1)], granularity="kv").save(tmp_path / "d.yaml", "dysco")


# -- validation ---------------------------------------------------------------------------------

def test_validate_accepts_a_good_set() -> None:
    hs = HeadSet([(3, 8), (0, 0)], model="tiny")
    assert hs.validate(geometry()) is hs


@pytest.mark.parametrize("heads, granularity, message", [
    ([(4, 0)], "query", "Head (4, 0): layer 4 is out of range; tiny has 4 layers x 9 query heads (3 KV heads)"),
    ([(-1, 0)], "query", "layer -1 is out of range"),
    ([(0, 9)], "query", "Head (0, 9): query head 9 is out of range; tiny has 4 layers x 9 query heads "
                        "(3 KV heads), so query heads run 0..8"),
    ([(0, 3)], "kv", "kv head 3 is out of range; tiny has 4 layers x 9 query heads (3 KV heads), so kv heads run 0..2"),
    ([], "query", "The head set is empty"),
    ([(1, 2), (0, 0), (1, 2)], "query", "more than once: (1, 2)"),
])
def test_validate_errors_name_the_problem(heads: list, granularity: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        HeadSet(heads, granularity=granularity).validate(geometry())  # type: ignore[arg-type]
    assert message in str(err.value)


def test_validate_refuses_another_models_heads() -> None:
    hs = HeadSet([(0, 0)], model="meta-llama/Llama-3.1-8B-Instruct")
    with pytest.raises(ValueError, match="made for model 'meta-llama/Llama-3.1-8B-Instruct', but it is being used "
                                         "with 'tiny'.*allow_other_model=True"):
        hs.validate(geometry())
    assert hs.validate(geometry(), allow_other_model=True) is hs
    assert HeadSet([(0, 0)]).validate(geometry()) is not None  # no model recorded: nothing to check


def test_model_aliases_and_local_dirs_count_as_the_same_model() -> None:
    assert same_model("meta-llama/Llama-2-13b-hf", "llama-2-13b")
    assert same_model("Qwen/Qwen3-8B", "models/Qwen3-8B/")
    assert same_model("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert not same_model("Qwen/Qwen3-8B", "qwen3-4b")
    HeadSet([(0, 0)], model="meta-llama/Llama-2-13b-hf").validate(geometry("llama-2-13b"))


# -- random baseline ----------------------------------------------------------------------------

def test_random_heads_is_seeded_distinct_and_excludes() -> None:
    a = random_heads((4, 9), 10, seed=3)
    assert a == random_heads((4, 9), 10, seed=3)
    assert a.heads != random_heads((4, 9), 10, seed=4).heads
    assert len(set(a.heads)) == 10 and a.method == "random" and a.meta["seed"] == 3
    a.validate(geometry())
    real = HeadSet([(layer, head) for layer in range(4) for head in range(9) if head != 0])
    drawn = random_heads(geometry(), 4, seed=0, exclude=real)
    assert sorted(drawn.heads) == [(0, 0), (1, 0), (2, 0), (3, 0)] and drawn.model == "tiny"
    with pytest.raises(ValueError, match=r"1 <= n <= 4 .* Got n=5"):
        random_heads(geometry(), 5, seed=0, exclude=real)


def test_random_kv_heads_stay_in_kv_range() -> None:
    hs = random_heads(geometry(), 12, seed=1, granularity="kv")
    assert hs.granularity == "kv" and max(h for _, h in hs) < 3
    hs.validate(geometry())


# -- GQA granularity ----------------------------------------------------------------------------

def test_as_kv_and_as_query_under_gqa() -> None:
    q = HeadSet([(1, 7), (0, 4), (0, 5), (1, 6), (0, 0)], scores=[5, 4, 3, 2, 1], model="tiny")
    kv = q.as_kv(9, 3)
    assert kv.granularity == "kv" and kv.heads == ((1, 2), (0, 1), (0, 0))
    assert kv.scores == (5.0, 4.0, 1.0) and kv.model == "tiny"
    kv.validate(geometry())
    back = kv.as_query(9, 3)
    assert back.granularity == "query"
    assert back.heads == ((1, 6), (1, 7), (1, 8), (0, 3), (0, 4), (0, 5), (0, 0), (0, 1), (0, 2))
    assert back.scores == (5.0,) * 3 + (4.0,) * 3 + (1.0,) * 3
    assert set(q.heads) <= set(back.heads)
    assert q.as_query(9, 3) is q and kv.as_kv(9, 3) is kv
    with pytest.raises(ValueError, match=r"n_heads \(9\) must be a positive multiple of n_kv_heads \(2\)"):
        q.as_kv(9, 2)


@given(st.sets(st.tuples(st.integers(0, 5), st.integers(0, 2)), min_size=1, max_size=12))
def test_kv_to_query_to_kv_is_identity(pairs: set[tuple[int, int]]) -> None:
    kv = HeadSet(sorted(pairs), granularity="kv")
    assert kv.as_query(9, 3).as_kv(9, 3).heads == kv.heads


# -- comparing ----------------------------------------------------------------------------------

def test_compare_overlap_and_rank_correlation() -> None:
    a = HeadSet([(0, 0), (0, 1), (0, 2), (0, 3)])
    r = compare(a, HeadSet([(0, 2), (0, 1), (0, 0), (5, 5)]))
    assert (r["n_a"], r["n_b"], r["shared"]) == (4, 4, 3)
    assert r["jaccard"] == pytest.approx(3 / 5) and r["spearman"] == pytest.approx(-1.0)
    assert compare(a, a)["spearman"] == pytest.approx(1.0) and compare(a, a)["jaccard"] == 1.0
    assert compare(a, HeadSet([(0, 0)]))["spearman"] is None
    with pytest.raises(ValueError, match="Cannot compare a query-head set with a kv-head set"):
        compare(a, HeadSet([(0, 0)], granularity="kv"))


# -- published lists ----------------------------------------------------------------------------

def test_published_data_ship_inside_the_package() -> None:
    assert data_dir() == Path(__file__).resolve().parent.parent / "headscope" / "data" / "published_heads"
    assert (data_dir() / "README.md").is_file()
    assert {"llama-3.1-8b-instruct", "qwen3-8b", "qwen3-4b", "llama-2-7b-80k"} <= set(list_published())


@pytest.mark.parametrize("name", list_published())
def test_every_published_list_is_in_range_for_its_model(name: str) -> None:
    hs = published(name)
    assert hs.model in PUBLISHED_SHAPES, f"add {hs.model} to PUBLISHED_SHAPES"
    n_layers, n_heads, n_kv = PUBLISHED_SHAPES[hs.model]
    assert (hs.meta["n_layers"], hs.meta["n_heads"], hs.meta["n_kv_heads"]) == (n_layers, n_heads, n_kv)
    hs.validate(geometry(hs.model, n_layers, n_heads, n_kv))
    assert hs.source and hs.meta["repository"].startswith("https://github.com/")
    assert resolve_heads(f"published:{name}") == hs


def test_published_lists_match_their_sources() -> None:
    assert published("qwen3-8b").top(3).heads == ((21, 31), (21, 18), (20, 15))
    assert published("llama-3.1-8b-instruct").heads[-1] == (19, 3) and len(published("qwen3-4b")) == 16
    top = published("llama-2-7b-80k").top(10)
    assert [(h, round(s, 2)) for h, s in zip(top.heads, top.scores)] == README_TOP10_LLAMA2_7B_80K


@pytest.mark.parametrize("name", WU_NAMES)
def test_wu_lists_rank_every_head_by_mean_score(name: str) -> None:
    hs = published(name)
    assert len(hs) == hs.meta["n_layers"] * hs.meta["n_heads"] and len(set(hs.heads)) == len(hs)
    assert list(hs.scores) == sorted(hs.scores, reverse=True)
    assert hs.meta["commit"] and hs.meta["path"].startswith("head_score/") and hs.meta["n_detections"] > 100


@pytest.mark.skipif(not WU_MIRROR.is_dir(), reason="needs a stored copy of nightdessert/Retrieval_Head")
@pytest.mark.parametrize("name", WU_NAMES)
def test_wu_top10_equals_the_readme_recipe_on_the_raw_file(name: str) -> None:
    """The README's recipe (np.mean per head, sorted descending, top 10) on the raw per-example file."""
    import subprocess

    hs = published(name)
    raw = json.loads(subprocess.run(["git", f"--git-dir={WU_MIRROR}", "show", f"{hs.meta['commit']}:{hs.meta['path']}"],
                                    check=True, capture_output=True).stdout)
    rows = sorted(((tuple(int(x) for x in k.split("-")), float(np.mean(v))) for k, v in raw.items()),
                  key=lambda r: r[1], reverse=True)[:10]
    assert [h for h, _ in rows] == list(hs.top(10).heads)
    assert np.allclose([s for _, s in rows], hs.top(10).scores, atol=1e-6)


def test_unknown_published_names_say_why() -> None:
    with pytest.raises(ValueError,
                       match="Unknown published head list 'gpt-5'. Published: llama-2-13b-64k, llama-2-7b-80k"):
        published("gpt-5")
    with pytest.raises(FileNotFoundError, match="Give a file path or published:NAME"):
        resolve_heads("no/such/file.json")


# -- command line -------------------------------------------------------------------------------

def run(*args: str) -> object:
    result = CliRunner().invoke(cli, ["heads", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_cli_list() -> None:
    result = run("list")
    assert result.exit_code == 0
    assert "qwen3-8b" in result.output and "Qwen/Qwen3-8B" in result.output
    assert "llama-2-13b-64k" in result.output and "1600 heads" in result.output


def test_cli_show_file_and_published(tmp_path: Path) -> None:
    result = run("show", "published:llama-2-13b-64k", "--top", "2")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert "llama-2-13b-64k" in lines[0] and "heads: 2" in lines[0]
    assert lines[-2].split()[:3] == ["1", "13", "23"] and lines[-1].split()[:3] == ["2", "9", "33"]
    path = SAMPLE.save(tmp_path / "h.yaml")
    result = run("show", str(path), "--top", "50")
    assert result.exit_code == 0 and result.output.splitlines()[-1].split() == ["3", "2", "4", "0.2500"]


def test_cli_compare(tmp_path: Path) -> None:
    path = published("qwen3-8b").top(4).save(tmp_path / "mine.json")
    result = run("compare", str(path), "published:qwen3-8b", "published:llama-3.1-8b-instruct")
    assert result.exit_code == 0
    rows = [line.split() for line in result.output.splitlines()[1:4]]
    assert rows[0][2:] == ["4", "16", "4", "0.250", "1.000"]
    assert rows[2][2:] == ["16", "16", "0", "0.000", "-", "*"]  # * : sets of different models (Qwen3 vs Llama)
    assert result.output.count("* different models: ") == 2
    assert run("compare", str(path)).exit_code == 2


def test_cli_convert(tmp_path: Path) -> None:
    out = tmp_path / "dysco.yaml"
    result = run("convert", "published:qwen3-4b", "--top", "3", "--to", "dysco", "--out", str(out))
    assert result.exit_code == 0 and "wrote 3 heads (dysco)" in result.output
    assert yaml.safe_load(out.read_text())["selected_heads"] == "[(20,15),(21,18),(21,31)]"
    # One rule for every output file (as `rank --out`): a rerun replaces it; --overwrite is still accepted.
    assert run("convert", "published:qwen3-4b", "--to", "dysco", "--out", str(out)).exit_code == 0
    assert yaml.safe_load(out.read_text())["selected_heads"].count("(") == len(published("qwen3-4b"))
    assert run("convert", "published:qwen3-4b", "--to", "dysco", "--out", str(out), "--overwrite").exit_code == 0
    tsv = tmp_path / "duo.tsv"
    tsv.write_text("0.9\t0.1\n0.2\t0.8\n")
    rh = tmp_path / "rh.json"
    result = run("convert", str(tsv), "--to", "headscope", "--out", str(rh), "--model", "x/y", "--threshold", "0.85")
    assert result.exit_code == 0 and HeadSet.load(rh) == HeadSet(
        [(0, 0)], granularity="kv", model="x/y", method="duo_attention_gate", scores=[0.9], source=str(tsv),
        meta={"threshold": 0.85, "n_layers": 2, "n_kv_heads": 2})


def test_cli_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text('selected_heads: "__import__(\'os\').system(\'echo hi\')"\n')
    for args in (("show", str(bad)), ("show", str(tmp_path / "absent.json")), ("show", "published:gpt-5"),
                 ("convert", "published:qwen3-8b", "--to", "retrieval_head", "--out", str(tmp_path / "r.json"))):
        result = run(*args)
        assert result.exit_code == 1 and result.output.startswith("Error: "), result.output
        assert "Traceback" not in result.output
    assert "never evaluates head strings" in run("show", str(bad)).output


# -- the format table (issue 23) ------------------------------------------------------------------


def test_every_format_is_one_row_and_each_writable_row_detects_what_it_writes(tmp_path: Path) -> None:
    from headscope.head_formats import FORMAT_TABLE, READ_FORMATS, WRITE_FORMATS

    assert READ_FORMATS == tuple(f.name for f in FORMAT_TABLE)
    assert set(WRITE_FORMATS) == {f.name for f in FORMAT_TABLE if f.write is not None}
    hs = HeadSet([(2, 1), (0, 3)], scores=(0.9, 0.4), model="m", method="qrscore")
    suffix = {"retrieval_head": ".json", "headscope": ".json"}
    for row in FORMAT_TABLE:
        if row.write is None:
            continue
        path = hs.save(tmp_path / f"{row.name}{suffix.get(row.name, '.yaml')}", row.name)
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        assert [f.name for f in FORMAT_TABLE if f.detect(data, text)][:1] == [row.name]
        assert HeadSet.load(path).heads == hs.heads


def test_a_duo_table_is_read_as_text_by_name_or_by_suffix(tmp_path: Path) -> None:
    table = "0.9\t0.1\n0.2\t0.8\n"
    (tmp_path / "gates.tsv").write_text(table)
    (tmp_path / "gates.txt").write_text(table)
    by_suffix = HeadSet.load(tmp_path / "gates.tsv")
    assert by_suffix.heads == HeadSet.load(tmp_path / "gates.txt", "duo").heads == ((0, 0), (1, 1))
    assert by_suffix.granularity == "kv"
