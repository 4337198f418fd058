"""`headscope` with one more decoding method, ``vanilla-on-schedule``: the control that tells whether
DySCO at strength 1 differs from vanilla only because of its schedule (issue 20).

Every head-reading method prefills the prompt up to its warm-up (the last context tokens and the
generation prompt) and feeds those tokens one at a time through the decode step; vanilla prefills
them all. In bf16 the two paths round differently, and DySCO at strength 1 (a zero bias) changed
0-8 of 100 answers against vanilla in the long-context study. ``vanilla-on-schedule`` takes
DySCO's schedule but runs a plain, unbiased pass at every fed token (no read pass, no selection, no
bias): if it gives DySCO-at-strength-1's answers and differs from vanilla on the same prompts, the
schedule is the cause. It is added through headscope's extension API (``register_step`` and
``register_method``), in this process only: nothing in the package changes.

    python bench/schedule_control.py ablate --methods vanilla-on-schedule --heads H --strengths 1 ...

(any ``headscope`` command line after the script's name; the method needs a head set, as every
method on DySCO's schedule does, but reads nothing from it).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from headscope.dysco.methods import METHOD_TABLE, MethodSpec, register_method, register_step  # noqa: E402

CONTROL = "vanilla-on-schedule"
STEP = "plain-on-schedule"


def plain_step(step: Any) -> None:
    """The fixed engine's plain step: one unbiased pass over its buffers, as vanilla's decode step runs."""
    step._plain()


def control_spec() -> MethodSpec:
    """The control's row of the method table (its step kind must be registered first)."""
    return MethodSpec(CONTROL, True, STEP, ("heads",), CONTROL,
                      "vanilla on DySCO's warm-up schedule (a control: no read, no selection, no bias)")


def register() -> None:
    """Add the control method to this process's method table (once)."""
    if CONTROL not in METHOD_TABLE:
        register_step(STEP, fixed=plain_step)
        register_method(control_spec())


def main(argv: list[str] | None = None) -> None:
    """Run headscope's command line with the control method registered."""
    from headscope.cli import main as headscope_main

    register()
    sys.argv = ["headscope", *(sys.argv[1:] if argv is None else argv)]
    headscope_main()


if __name__ == "__main__":
    main()
