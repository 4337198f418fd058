"""The head scores: one row each, read by ``analysis.score``, the ``rank`` and ``plot`` commands and
the ablation grid's head-set labels, so a score added here is offered everywhere it fits.

Kept apart from :mod:`headscope.analysis` (which imports xarray) so the CLI can list the scores
without loading the analysis code.

Example
-------
>>> [s.name for s in SCORE_TABLE.values() if s.head_label]
['qrscore', 'retrieval']
>>> score_spec("magic")
Traceback (most recent call last):
...
ValueError: Unknown score 'magic'; scores: qrscore, retrieval, longrange, sink, local, entropy, span, causal.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HEAD_LABEL_SCORES", "PLOT_SCORES", "RANK_SCORES", "SCORE_TABLE", "ScoreSpec", "score_spec"]


@dataclass(frozen=True)
class ScoreSpec:
    """One head score.

    ``function``: ``module:name`` of the function (in :mod:`headscope.analysis`), called as
    ``function(capture, per_example=...)``. ``rank``/``plot``: offered by ``headscope rank`` /
    ``headscope plot``. ``head_label``: usable as an ablation head-set label ``NAME:K`` (the top
    K heads of a calibration capture). ``needs_decode``: reads the traced decode steps of a
    needle-type capture. ``needs_model``: not computed from a capture alone (loads the model).
    """

    name: str
    function: str
    summary: str
    rank: bool = False
    plot: bool = False
    head_label: bool = False
    needs_decode: bool = False
    needs_model: bool = False


SCORE_TABLE: dict[str, ScoreSpec] = {s.name: s for s in (
    ScoreSpec("qrscore", "qrscore:qr_score", "QRHead's query-focused retrieval score", rank=True, plot=True,
              head_label=True),
    ScoreSpec("retrieval", "retrieval:retrieval_score", "Wu et al.'s retrieval score (copy-paste on needles)",
              rank=True, plot=True, head_label=True, needs_decode=True),
    ScoreSpec("longrange", "mass:long_range_mass", "attention mass far from the query", rank=True, plot=True),
    ScoreSpec("sink", "mass:sink_mass", "attention mass on the first tokens", plot=True),
    ScoreSpec("local", "mass:local_mass", "attention mass on the nearest tokens", plot=True),
    ScoreSpec("entropy", "mass:attention_entropy", "entropy of the attention row", plot=True),
    ScoreSpec("span", "mass:span_mass", "attention mass on a span kind"),
    ScoreSpec("causal", "causal:causal_influence", "answer log-prob drop when the head is zeroed", rank=True,
              needs_model=True),
)}
RANK_SCORES = tuple(s.name for s in SCORE_TABLE.values() if s.rank)
PLOT_SCORES = tuple(s.name for s in SCORE_TABLE.values() if s.plot)
HEAD_LABEL_SCORES = tuple(s.name for s in SCORE_TABLE.values() if s.head_label)


def score_spec(name: str) -> ScoreSpec:
    """The row of ``name``; a one-line ValueError naming the scores otherwise."""
    if name not in SCORE_TABLE:
        raise ValueError(f"Unknown score {name!r}; scores: {', '.join(SCORE_TABLE)}.")
    return SCORE_TABLE[name]
