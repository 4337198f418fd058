"""Titles that fit their figure: long titles are broken into lines measured in the title's font.

Constrained layout makes room for a title's height but never wraps it, so a title wider than the
canvas was clipped at both edges (issue 24). :func:`wrap_to_width` breaks a title between words
so that every line, measured with the Agg renderer's own text metrics, fits a given width.

Example
-------
>>> print(wrap_to_width("QRScore of every head, smollm2-135m: 4 passkey prompts", 2.0, size=10))
QRScore of every head,
smollm2-135m: 4 passkey
prompts
"""

from __future__ import annotations

from typing import Any

__all__ = ["set_suptitle", "set_title", "wrap_to_width"]

# An axes title is centred on its axes, which constrained layout may shift off the figure's
# centre (a colour bar, a legend or a neighbour takes the rest): fit it to this share of the width.
AXES_SHARE = 0.8
# A figure title is centred on the figure: keep a margin at each edge.
FIGURE_SHARE = 0.95


def wrap_to_width(text: str, width_in: float, *, size: Any = "large", weight: Any = "normal") -> str:
    """``text`` with its lines broken between words so that none is wider than ``width_in``
    inches in a font of ``size`` (points or a name such as ``"large"``). A single word wider
    than that stays whole on its own line; existing line breaks are kept."""
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    renderer = RendererAgg(1, 1, 72)  # at 72 dpi, one pixel is one point
    prop = FontProperties(size=size, weight=weight)
    limit = width_in * 72

    def width(s: str) -> float:
        return float(renderer.get_text_width_height_descent(s, prop, ismath=False)[0])

    out = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            trial = f"{line} {word}" if line else word
            if line and width(trial) > limit:
                out.append(line)
                line = word
            else:
                line = trial
        out.append(line)
    return "\n".join(out)


def set_title(ax: Any, text: str, **kw: Any) -> Any:
    """``ax.set_title(text)``, wrapped to fit the figure (see :data:`AXES_SHARE`)."""
    import matplotlib as mpl

    size = kw.get("fontsize", mpl.rcParams["axes.titlesize"])
    weight = kw.get("fontweight", mpl.rcParams["axes.titleweight"])
    width = ax.figure.get_figwidth() * AXES_SHARE
    return ax.set_title(wrap_to_width(text, width, size=size, weight=weight), **kw)


def set_suptitle(fig: Any, text: str, **kw: Any) -> Any:
    """``fig.suptitle(text)``, wrapped to fit the figure's width."""
    import matplotlib as mpl

    size = kw.get("fontsize", mpl.rcParams["figure.titlesize"])
    weight = kw.get("fontweight", mpl.rcParams["figure.titleweight"])
    return fig.suptitle(wrap_to_width(text, fig.get_figwidth() * FIGURE_SHARE, size=size, weight=weight), **kw)
