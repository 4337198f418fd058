"""bench/qwen_slices.py: a file split into slices, carried over several calls, reassembles exactly or not at all."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("qwen_slices", Path(__file__).parents[1] / "bench" / "qwen_slices.py")
slices = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(slices)


def test_slices_carried_in_several_calls_reassemble_exactly(tmp_path):
    data = bytes(range(256)) * 40 + b"end"
    (tmp_path / "m.gguf").write_bytes(data)
    manifest = slices.split(tmp_path / "m.gguf", tmp_path / "here", size=3000)
    assert [s["size"] for s in manifest["slices"]] == [3000, 3000, 3000, 1243]
    names = [s["name"] for s in manifest["slices"]]
    call = tmp_path / "call"
    call.mkdir()
    (call / "manifest.json").write_bytes((tmp_path / "here" / "manifest.json").read_bytes())
    for name in names[:2]:  # first call carries two slices
        (call / name).write_bytes((tmp_path / "here" / name).read_bytes())
    assert slices.stash(call, tmp_path / "store") == names[2:]
    assert not slices.ready(tmp_path / "store") and not slices.ready(tmp_path / "nothing-yet")
    with pytest.raises(SystemExit, match="missing"):
        slices.assemble(tmp_path / "store", tmp_path / "out.gguf")
    for f in call.iterdir():
        f.unlink()
    (call / names[2]).write_bytes(b"x" * 3000)  # corrupt: refused
    (call / names[3]).write_bytes((tmp_path / "here" / names[3]).read_bytes())
    assert slices.stash(call, tmp_path / "store") == [names[2]]
    (call / names[2]).write_bytes((tmp_path / "here" / names[2]).read_bytes())
    assert slices.stash(call, tmp_path / "store") == []
    assert slices.ready(tmp_path / "store")
    slices.assemble(tmp_path / "store", tmp_path / "out.gguf")
    assert (tmp_path / "out.gguf").read_bytes() == data


def test_slices_split_again_replace_the_stashed_manifest(tmp_path):
    """A file split again at another size (a call grew past its limit) comes with a new manifest:
    the store takes it, so `assemble` does not wait for the old slices."""
    data = bytes(range(256)) * 40
    (tmp_path / "m.gguf").write_bytes(data)
    old = slices.split(tmp_path / "m.gguf", tmp_path / "old", size=6000)
    store = tmp_path / "store"
    call = tmp_path / "call"
    call.mkdir()
    for name in ("manifest.json", old["slices"][1]["name"]):
        (call / name).write_bytes((tmp_path / "old" / name).read_bytes())
    slices.stash(call, store)  # one slice of the first split arrived
    new = slices.split(tmp_path / "m.gguf", tmp_path / "new", size=4000)
    for entry in new["slices"]:
        for f in call.iterdir():
            f.unlink()
        for name in ("manifest.json", entry["name"]):
            (call / name).write_bytes((tmp_path / "new" / name).read_bytes())
        missing = slices.stash(call, store)
    assert missing == []
    slices.assemble(store, tmp_path / "out.gguf")
    assert (tmp_path / "out.gguf").read_bytes() == data
