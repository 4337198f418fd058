"""Upper bounds on counts a user types (examples, lengths, decode steps, new tokens).

A count nothing could hold (``calibrate --examples 99999999999999999999``) used to start building
its examples: no output, 22 GB of memory, then the OOM killer. Counts are checked against these
bounds where their configs are built (``CalibrationConfig``, ``AblationConfig``, ``DyscoConfig``
knobs), before any example is built or any model loads, with one line naming the setting.

Example
-------
>>> check_count("The 'n_examples' parameter", 8, MAX_EXAMPLES, "examples per length")
8
>>> check_count("The 'n_examples' parameter", 10**5, MAX_EXAMPLES, "examples per length")
Traceback (most recent call last):
...
ValueError: The 'n_examples' parameter must be at most 10,000 examples per length (...). Got 100000 instead.
"""

from __future__ import annotations

__all__ = ["MAX_EXAMPLES", "MAX_TOKENS", "check_count"]

# Examples per length (calibration) or per task and length (evaluation). Head-finding papers use
# tens to hundreds; 10,000 SmolLM2 parts of 1,024 tokens hold 22 GB of attention rows (30 x 9 heads
# x 1,024 positions x 4 bytes x 2 arrays each, before compression).
MAX_EXAMPLES = 10_000
# Token counts (context lengths, decode steps, new tokens): above every model's context window.
MAX_TOKENS = 10_000_000


def check_count(what: str, value: int, maximum: int, unit: str) -> int:
    """Return ``value``, or raise a one-line ValueError when it is above ``maximum``."""
    if value > maximum:
        why = ("more than any model's context window" if maximum == MAX_TOKENS
               else "a run that large would not fit in memory or on disk; split it into several runs")
        raise ValueError(f"{what} must be at most {maximum:,} {unit} ({why}). Got {value!r} instead.")
    return value
