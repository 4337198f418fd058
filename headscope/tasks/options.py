"""Task options: the prompt-format factors a generator exposes, written ``TASK+key=value+...``.

Two kinds of options. **Difficulty** (:data:`DIFFICULTY`) and the **split**, on the long-context
families: ``mkey+distractors=N`` (distractor needles), ``chain+hops=H+chains=C`` (links of the
asked chain, distractor chains), ``kv+near=N`` (near-duplicate keys, sharing all but the last
12 hex digits with the asked key), ``qa+hard=N`` (exactly N documents about people who share the
gold person's first name or surname; the plain ``qa`` is ``hard=pool``). A difficulty option
changes only the difficulty: the gold draw (answer, depth, haystack) is that of the plain task.
``split=pilot`` draws every example from another RNG stream than ``split=eval`` (the default), for
any seed, so a difficulty chosen on the pilot split is never tuned on evaluation prompts. The
default of each option is the first value in :data:`TASK_OPTIONS`; the ``meta`` of every ``mkey``,
``chain`` and ``kv`` example, and of a ``qa`` example with options, records each difficulty value
and the split (plain ``qa`` prompts stay exactly as before).

**Format** options of ``passkey-filler`` move its prompt, one factor at a time, from headscope's
format to the classic pass-key format (the one the DySCO authors' numbers match):

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

``label=drop`` is the one-factor edit of the label: the haystack is fitted *with* the label (the
paragraph prompt's words, cut and needle position exactly), then "Question: " is left out, so the
prompt is the paragraph prompt minus the label's text (a few tokens shorter). ``label=no`` refits
the haystack to the length instead: one more filler word, which moves the needle in some prompts.

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
>>> canonical_task("mkey+split=pilot+distractors=15")
'mkey+distractors=15+split=pilot'
"""

from __future__ import annotations

__all__ = ["CLASSIC_PASSKEY", "DIFFICULTY", "TASK_OPTIONS", "canonical_task", "options_name", "parse_task_spec",
           "task_base"]

_SPLIT = ("eval", "pilot")
# task -> option -> allowed values, the default first
TASK_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "passkey-filler": {"join": ("paragraph", "space"), "cut": ("word", "unit"), "label": ("yes", "no", "drop")},
    "mkey": {"distractors": ("3", "0", "1", "7", "15", "31", "63"), "split": _SPLIT},
    "chain": {"hops": ("2", "1", "3", "4", "6", "8"), "chains": ("2", "0", "1", "4", "8", "16"), "split": _SPLIT},
    "kv": {"near": ("0", "1", "2", "4", "8", "16", "32"), "split": _SPLIT},
    "qa": {"hard": ("pool", "0", "1", "2", "4", "8", "16"), "split": _SPLIT},
}
# The options that set a task's difficulty (the study's pilot picks one level per model and length).
DIFFICULTY: dict[str, tuple[str, ...]] = {"mkey": ("distractors",), "chain": ("hops", "chains"), "kv": ("near",),
                                          "qa": ("hard",)}
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


def options_name(task: str, options: dict[str, str] | None) -> str:
    """``TASK+key=value+...`` from a task name and an options dict (not yet canonical)."""
    return "+".join([task, *(f"{k}={v}" for k, v in (options or {}).items())])


def canonical_task(spec: str) -> str:
    """``spec`` with options in their fixed order and default values dropped."""
    name, opts = parse_task_spec(spec)
    allowed = TASK_OPTIONS.get(name, {})
    kept = [f"{k}={v}" for k, v in opts.items() if v != allowed[k][0]]
    return "+".join([name, *kept])
