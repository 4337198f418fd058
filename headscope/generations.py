"""The output file of ``headscope generate --out``: one JSON line per prompt, resumable, tied to its settings.

``FILE`` holds one record per prompt id, appended as each finishes (the crash rules of
:mod:`headscope._jsonl`: a killed run keeps every finished record, a torn last line is cut
before anything is appended). ``FILE.config.json`` records the settings that decide the outputs
(model, method, heads, DySCO knobs, ``max_new_tokens``, seed), the versions and the command: a
rerun with the same settings resumes after the ids already there, and a rerun with other
settings is refused instead of mixing outputs of two configurations in one file. Each record
also carries the settings' fingerprint (``settings_sha256``) and ``max_new_tokens``: without the
settings file, a rerun is compared with every record, and a file whose records lack the
fingerprint (an older headscope's) is not resumed without its settings file. While a run
writes ``FILE`` it holds the file's lock (:func:`headscope._outputs.output_lock`), so two runs
never write the same ids twice.

Example
-------
>>> out = GenerationsFile("g.jsonl", {"model": "smollm2-135m", "method": "vanilla", "seed": 0})  # doctest: +SKIP
>>> done = out.check()                  # ids already there; raises if the settings differ     # doctest: +SKIP
>>> with out.writing() as done:          # locked; ``done``: the ids there now               # doctest: +SKIP
...     out.append({"id": "p0", "output": "..."})
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._jsonl import append_jsonl, cut_torn_tail, read_jsonl
from ._outputs import check_output, output_lock

__all__ = ["FINGERPRINT", "SETTINGS_FORMAT", "GenerationsFile", "check_prompt_lengths", "settings_fingerprint"]

SETTINGS_FORMAT = "headscope.generations/1"
# Recorded in the settings file but free to change between runs: where the run computes, and
# --dtype as asked (what decides the tokens is the dtype it resolves to, ``weights_dtype``).
# Other choices that change only rounding (the device's kernels, the batch size, the decode
# attention path, which each record states) are free too: in bf16 each of them changes some
# tokens, as bench/README.md measures, and a file that refused them could not be resumed on
# another machine.
_FREE = ("device", "dtype")
# Decisive, but added after files were written without it (2026-12-07): compared only where the
# settings file or the records state it, and left out of the fingerprint, so older files resume.
_LATER = ("weights_dtype",)
# The settings a record states as asked (resolved values such as the warm-ups are left out: a
# record holds what the run resolved, not what was asked); max_new_tokens since issue 21.
_RECORD_KEYS = ("model", "method", "heads", "strength", "top_k", "top_p", "decay", "max_new_tokens", "seed",
                "weights_dtype")
# Each record also carries the fingerprint of every setting (_FREE aside), so that a file whose
# settings file is lost can still be resumed safely, and a record of another run is found.
FINGERPRINT = "settings_sha256"


def settings_fingerprint(settings: Mapping[str, Any]) -> str:
    """A short hash of every setting that decides the outputs (all but ``device`` and ``dtype``, and
    ``weights_dtype``, which is compared apart)."""
    decisive = {k: v for k, v in settings.items() if k not in _FREE + _LATER}
    return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()[:16]


def _differences(before: Mapping[str, Any], now: Mapping[str, Any], keys: Sequence[str]) -> str:
    return ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in keys if before.get(k) != now.get(k))


class GenerationsFile:
    """``path`` (JSONL, one record per prompt id) and its settings file ``path.config.json``.

    ``settings`` is a JSON-safe mapping of the run's settings; every key but ``device`` and
    ``dtype`` must match the file's for a run to resume it (``weights_dtype`` where the file states it).
    """

    def __init__(self, path: str | Path, settings: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.settings = json.loads(json.dumps(dict(settings), allow_nan=False))  # as it reads back from disk
        real = self.path.resolve()  # through a symlink, the settings of the file it points to
        self.settings_path = real.with_name(real.name + ".config.json")

    def _saved(self) -> dict[str, Any] | None:
        try:
            saved = json.loads(self.settings_path.read_text())
            return dict(saved["settings"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{self.settings_path} is damaged (not the settings of a generate run); delete it to "
                             f"resume {self.path} with the settings of this run.") from None

    def check(self) -> set[str]:
        """The ids already in the file (read only: nothing is written or repaired).

        Raises ``ValueError`` when the file was written with other settings (naming them), or
        when a complete line of it is not a record.
        """
        check_output(self.path, kind="file")
        records = read_jsonl(self.path)
        if not records:
            return set()
        saved = self._saved()
        if saved is not None:
            keys = [k for k in sorted(set(saved) | set(self.settings))
                    if k not in _FREE and (k in saved or k not in _LATER)]
            diff = _differences(saved, self.settings, keys)
        else:  # no settings file (lost, or from before they existed): what every record says
            diff = next((d for r in records if (d := _differences(r, self.settings, [k for k in _RECORD_KEYS
                                                                                      if k in r]))), "")
        fingerprint = settings_fingerprint(self.settings)
        if not diff and any(r.get(FINGERPRINT, fingerprint) != fingerprint for r in records):
            diff = "a setting the records do not show: their settings fingerprint differs from this run's"
        if diff:
            raise ValueError(f"{self.path} already holds outputs made with other settings ({diff}). Rerun with "
                             "the same settings to resume it, or write to another --out.")
        if saved is None and any(FINGERPRINT not in r for r in records):
            raise ValueError(f"{self.path} has no settings file ({self.settings_path.name}) and its records, written "
                             "by an older headscope, do not show every setting (such as max_new_tokens), so resuming "
                             f"could mix two configurations. Restore {self.settings_path.name}, or write to another "
                             "--out.")
        return {str(r["id"]) for r in records if "id" in r}

    @contextmanager
    def writing(self, command: str | None = None) -> Iterator[set[str]]:
        """Hold the file's lock, check it again, cut a torn last line and record the settings;
        yield the ids already done (another run may have added some since :meth:`check`)."""
        with output_lock(self.path, kind="file", command=command):
            done = self.check()
            cut_torn_tail(self.path)
            from .calibrate import library_versions

            tmp = self.settings_path.with_name(self.settings_path.name + ".tmp")
            tmp.write_text(json.dumps({"format": SETTINGS_FORMAT, "settings": self.settings,
                                       "versions": library_versions(), "command": command,
                                       "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=1, sort_keys=True))
            tmp.replace(self.settings_path)
            yield done

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record durably, with the fingerprint of the settings (strict JSON: NaN or
        infinity raise ``ValueError``)."""
        append_jsonl(self.path, {**record, FINGERPRINT: settings_fingerprint(self.settings)})


def check_prompt_lengths(prompts: Sequence[tuple[str, Sequence[int]]], max_context: int | None) -> None:
    """Refuse a prompt longer than the model's context (``prompts``: ``(id, token ids)`` pairs)."""
    if not max_context:
        return
    for key, ids in prompts:
        if len(ids) > max_context:
            raise ValueError(f"Prompt {key!r} is {len(ids)} tokens long (chat template included), beyond the "
                             f"model's context of {max_context} tokens. Shorten it, or use a longer-context model.")
