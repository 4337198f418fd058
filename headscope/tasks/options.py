"""Task options: the prompt-format factors a generator exposes, written ``TASK+key=value+...``.

Only ``passkey-filler`` has options so far; they move its prompt, one factor at a time, from
headscope's format to the classic pass-key format (the one the DySCO authors' numbers match):

=========  ====================================  =======================================
option     ``passkey-filler`` (default)          classic
=========  ====================================  =======================================
``join``   ``paragraph``: a blank line between   ``space``: filler units joined by one
           filler units                          space, no paragraph breaks
``cut``    ``word``: the haystack is cut word    ``unit``: whole filler units only, the
           by word to the length (mid-sentence   needle between two units
           at the end), the needle at a
           sentence boundary
``label``  ``yes``: "Question: " before the      ``no``: the question alone, after the
           question                              blank line
=========  ====================================  =======================================

So ``passkey-filler+join=space+cut=unit+label=no`` is the classic format. Options change the
text only: the pass key, its depth and the example's random draws are those of the plain task
(paired comparisons across formats see the same keys at the same depths); the example id carries
the options, the example's ``task`` stays the base name.

Example
-------
>>> parse_task_spec("passkey-filler+label=no+join=space")
('passkey-filler', {'join': 'space', 'label': 'no'})
>>> canonical_task("passkey-filler+join=paragraph")
'passkey-filler'
>>> task_base("passkey-filler+cut=unit")
'passkey-filler'
"""

from __future__ import annotations

__all__ = ["CLASSIC_PASSKEY", "TASK_OPTIONS", "canonical_task", "parse_task_spec", "task_base"]

# task -> option -> allowed values, the default first
TASK_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "passkey-filler": {"join": ("paragraph", "space"), "cut": ("word", "unit"), "label": ("yes", "no")},
}
CLASSIC_PASSKEY = "passkey-filler+join=space+cut=unit+label=no"


def task_base(spec: str) -> str:
    """The task name without options."""
    return str(spec).split("+", 1)[0]


def parse_task_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``(task, options)`` from ``TASK+key=value+...``; ValueError on an unknown key or value."""
    name, *parts = str(spec).split("+")
    if not parts:
        return name, {}
    allowed = TASK_OPTIONS.get(name)
    if allowed is None:
        raise ValueError(f"task {name!r} takes no options (got {spec!r}); tasks with options: "
                         f"{sorted(TASK_OPTIONS)}")
    opts: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or key not in allowed:
            raise ValueError(f"{spec!r}: options of {name!r} are written key=value with key one of "
                             f"{list(allowed)}; got {part!r}")
        if value not in allowed[key]:
            raise ValueError(f"{spec!r}: option {key!r} of {name!r} must be one of {list(allowed[key])}; "
                             f"got {value!r}")
        if key in opts:
            raise ValueError(f"{spec!r}: option {key!r} is given twice")
        opts[key] = value
    return name, dict(sorted(opts.items(), key=lambda kv: list(allowed).index(kv[0])))


def canonical_task(spec: str) -> str:
    """``spec`` with options in their fixed order and default values dropped."""
    name, opts = parse_task_spec(spec)
    allowed = TASK_OPTIONS.get(name, {})
    kept = [f"{k}={v}" for k, v in opts.items() if v != allowed[k][0]]
    return "+".join([name, *kept])
