"""headscope: find, score and reuse the attention heads that retrieve in long-context LMs.

Importing headscope changes nothing global (no attention functions are registered, no RNG
is seeded); heavy libraries load only when a function that needs them is called.

The notebook API, one name per stage (each is imported from the module named in ``_LAZY``)::

    lm = headscope.load_model("smollm2-135m")                              # models
    headscope.run_calibration(headscope.CalibrationConfig(...), "runs/cal")  # calibrate
    ds = headscope.open_capture("runs/cal")                                # read a capture
    heads = headscope.top_heads(headscope.score(ds, "qrscore"), 16)        # rank (+ bootstrap)
    headscope.HeadClusterer(n_clusters=4).fit(headscope.head_features(ds))  # cluster
    hs = headscope.HeadSet(heads)                                          # head sets, any format
    headscope.generate(lm, input_ids, headscope.DyscoConfig(heads=heads))  # DySCO (generate_batch)
    headscope.run_ablation(headscope.AblationConfig.from_yaml(path), "runs/ab")  # ablate

>>> import headscope
>>> headscope.HeadSet([(1, 2), (0, 3)]).heads
((1, 2), (0, 3))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Name -> module it is imported from on first use. Lazy, so `import headscope` (and
# `headscope --help`) loads neither torch nor xarray.
_LAZY = {
    "load_model": "models",
    "open_capture": "store",
    "HeadSet": "heads",
    "CalibrationConfig": "calibrate",
    "run_calibration": "calibrate",
    "score": "analysis",
    "top_heads": "analysis",
    "bootstrap": "analysis",
    "HeadClusterer": "analysis",
    "head_features": "analysis",
    "DyscoConfig": "dysco",
    "generate": "dysco",
    "generate_batch": "dysco",
    "AblationConfig": "ablate",
    "run_ablation": "ablate",
}

__all__ = ["__version__", *_LAZY]

# What type checkers and IDEs see (`X as X`: an explicit re-export); at run time __getattr__
# imports each name on first use.
if TYPE_CHECKING:
    from .ablate import AblationConfig as AblationConfig
    from .ablate import run_ablation as run_ablation
    from .analysis import HeadClusterer as HeadClusterer
    from .analysis import bootstrap as bootstrap
    from .analysis import head_features as head_features
    from .analysis import score as score
    from .analysis import top_heads as top_heads
    from .calibrate import CalibrationConfig as CalibrationConfig
    from .calibrate import run_calibration as run_calibration
    from .dysco import DyscoConfig as DyscoConfig
    from .dysco import generate as generate
    from .dysco import generate_batch as generate_batch
    from .heads import HeadSet as HeadSet
    from .models import load_model as load_model
    from .store import open_capture as open_capture


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'headscope' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value  # the next lookup skips __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
