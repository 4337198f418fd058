"""Move a large file to the GPU machine in slices small enough for one device-tool call each.

The device tool carries at most ~45 MB of files per call, and the Qwen2.5-Coder-0.5B GGUF is
491 MB. Here: split it into numbered slices with a manifest of SHA-256s. There: each call stashes
the slices it carried into a directory that outlives the call (the machine stays warm between
calls), and a last call reassembles the file, checking every slice and the whole file.

    python bench/qwen_slices.py split GGUF DIR [--size 45000000]   # here: DIR/NAME.000 ... + DIR/manifest.json
    python3 bench/qwen_slices.py stash DIR STORE                    # there, every call: copy + verify new slices
    python3 bench/qwen_slices.py assemble STORE OUT_FILE            # there, once all are stashed
    python3 bench/qwen_slices.py ready STORE                        # exit 0 once every slice is there (sizes only)

``stash`` and ``assemble`` print which slices are still missing; ``assemble`` exits 1 (and
writes nothing) unless every slice and the whole file match the manifest. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

MANIFEST = "manifest.json"
_BLOCK = 1 << 22


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def split(source: Path, out_dir: Path, size: int) -> dict:
    """Write ``source`` as slices of ``size`` bytes plus a manifest; return the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    whole, slices, index = hashlib.sha256(), [], 0
    with open(source, "rb") as fh:
        while chunk := fh.read(size):
            whole.update(chunk)
            name = f"{source.name}.{index:03d}"
            (out_dir / name).write_bytes(chunk)
            slices.append({"name": name, "size": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()})
            index += 1
    manifest = {"file": source.name, "size": source.stat().st_size, "sha256": whole.hexdigest(), "slices": slices}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def _load_manifest(*dirs: Path) -> dict:
    for d in dirs:
        if (d / MANIFEST).is_file():
            return json.loads((d / MANIFEST).read_text())
    raise SystemExit(f"no {MANIFEST} in {' or '.join(map(str, dirs))}: carry it with the first slice")


def _valid(path: Path, entry: dict) -> bool:
    return path.is_file() and path.stat().st_size == entry["size"] and _sha256(path) == entry["sha256"]


def stash(src: Path, store: Path) -> list[str]:
    """Copy every valid slice found in ``src`` into ``store``; return the names still missing."""
    store.mkdir(parents=True, exist_ok=True)
    manifest = _load_manifest(src, store)
    stored = store / MANIFEST
    # The carried manifest wins: slices split again (another size) come with a new one, and the old
    # one would make `assemble` wait for slices that no longer exist (2026-12-07: a stage lost 15 min)
    if not stored.is_file() or json.loads(stored.read_text()) != manifest:
        if stored.is_file():
            print(f"{stored}: replaced by the carried manifest (the file was split again)")
        stored.write_text(json.dumps(manifest, indent=1))
    for entry in manifest["slices"]:
        here, there = src / entry["name"], store / entry["name"]
        if here.is_file() and not _valid(there, entry):
            if not _valid(here, entry):
                print(f"{here}: size or SHA-256 differs from the manifest; not stashed", file=sys.stderr)
                continue
            shutil.copyfile(here, there)
            print(f"stashed {entry['name']} ({entry['size']:,} bytes)")
    missing = [e["name"] for e in manifest["slices"] if not _valid(store / e["name"], e)]
    have = len(manifest["slices"]) - len(missing)
    print(f"{have} of {len(manifest['slices'])} slices in {store}"
          + (f"; missing: {' '.join(missing)}" if missing else ""))
    return missing


def ready(store: Path) -> bool:
    """Whether every slice of the stashed manifest is in ``store`` at its size (a cheap check, no
    hashing: `assemble` verifies every byte)."""
    if not (store / MANIFEST).is_file():
        return False
    manifest = _load_manifest(store)
    return all((store / e["name"]).is_file() and (store / e["name"]).stat().st_size == e["size"]
               for e in manifest["slices"])


def assemble(store: Path, target: Path) -> None:
    """Concatenate the stashed slices into ``target`` if every slice and the whole match."""
    manifest = _load_manifest(store)
    missing = [e["name"] for e in manifest["slices"] if not _valid(store / e["name"], e)]
    if missing:
        raise SystemExit(f"cannot assemble {manifest['file']}: missing or corrupt slices {' '.join(missing)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    whole = hashlib.sha256()
    with open(tmp, "wb") as out:
        for entry in manifest["slices"]:
            data = (store / entry["name"]).read_bytes()
            whole.update(data)
            out.write(data)
    if whole.hexdigest() != manifest["sha256"] or tmp.stat().st_size != manifest["size"]:
        tmp.unlink()
        raise SystemExit(f"assembled {manifest['file']} does not match the manifest's SHA-256")
    os.replace(tmp, target)
    print(f"{target}: {manifest['size']:,} bytes, SHA-256 {manifest['sha256']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("split", help="split a file into slices with a manifest")
    p.add_argument("source", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--size", type=int, default=45_000_000, help="bytes per slice (default 45,000,000)")
    p = sub.add_parser("stash", help="copy the slices found in DIR into STORE, verified")
    p.add_argument("src", type=Path)
    p.add_argument("store", type=Path)
    p = sub.add_parser("assemble", help="reassemble the stashed slices into OUT_FILE, verified")
    p.add_argument("store", type=Path)
    p.add_argument("target", type=Path)
    p = sub.add_parser("ready", help="exit 0 if every slice is in STORE (sizes only), else 1")
    p.add_argument("store", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "split":
        m = split(args.source, args.out_dir, args.size)
        print(f"{len(m['slices'])} slices of <= {args.size:,} bytes in {args.out_dir}; SHA-256 {m['sha256']}")
    elif args.cmd == "stash":
        stash(args.src, args.store)
    elif args.cmd == "ready":
        return 0 if ready(args.store) else 1
    else:
        assemble(args.store, args.target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
