"""``AblationConfig``: the grid of an ablation study, read from YAML and validated before any model loads.

Grid axes (each a list; a scalar means a list of one): ``models``, ``tasks``, ``lengths``,
``methods``, ``heads``, ``strengths``, ``top_k``, ``top_p``, ``decay``, ``temperature``.
For file tasks (``FORMAT:PATH``) each length is a prompt budget: LongBench v2 contexts are cut in the
middle to fit it, other files keep the records that fit. Settings: ``examples`` (per task and length),
``seed`` (evaluation seed), ``max_new_tokens``,
``device``, ``dtype``, ``revision``, ``allow_other_model``, ``gold_attention`` (prompts per task and
length whose attention on the gold span is recorded for every vanilla and head-method cell:
``OUT/gold_attention.jsonl``; 0 = off), and the sections
``dysco`` (fixed DySCO options), ``calibration`` (how ``qrscore:K`` / ``retrieval:K`` heads are
found) and ``tuning`` (how ``auto`` strength / top-k are chosen), ``headline`` (which setting the
report's main figures show). ``configs/smollm2-study.yaml`` shows every key.

Example
-------
>>> cfg = AblationConfig.from_dict({"tasks": "passkey", "lengths": [512], "methods": ["vanilla", "dysco"],
...                                 "heads": ["random:4"], "strengths": [3]})
>>> cfg.strengths, cfg.heads
((3.0,), ('random:4',))
>>> AblationConfig.from_dict({"strenghts": [2]})
Traceback (most recent call last):
...
ValueError: Unknown key 'strenghts' in the ablation config. Known keys: allow_other_model, calibration, ...
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .._jsonl import read_user_text
from .._limits import MAX_EXAMPLES, MAX_TOKENS, check_count
from ..auto_strength import DEFAULT_GRID
from ..dtypes import DEFAULT_DTYPE, DTYPES
from ..dysco.methods import DEFAULT_METHOD, HEAD_METHODS, METHODS, method_with_role
from ..score_table import HEAD_LABEL_SCORES
from .grid import AXES, GRID_AXES, HEADLINE_AXES, axis_labels, match

__all__ = ["GRID_AXES", "HEAD_METHODS", "METHODS", "AblationConfig", "CalibrationSpec", "HeadSpec", "TuningSpec",
           "parse_head_spec"]

_DYSCO_KEYS = ("context_warmup", "intervention_warmup", "templates", "warmup_counting")
_CAL_KEYS = ("capture", "task", "lengths", "examples", "seed", "decode_steps")
_TUNE_KEYS = ("examples", "seed", "strengths", "top_k")


def _bad_key(key: str, allowed: str, value: Any) -> ValueError:
    return ValueError(f"The {key!r} key of the ablation config must be {allowed}. Got {value!r} instead.")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str) and "," in value:
        return [v.strip() for v in value.split(",") if v.strip()]
    return [value]


def _off(value: Any) -> bool:
    """Whether a top-k / top-p value means "no such selection": ``none``, null, or 0 (as in
    ``headscope generate --select-top-k 0``)."""
    if value is None or isinstance(value, bool):
        return value is None
    if isinstance(value, str):
        value = value.strip().lower()
        if value == "none":
            return True
        try:
            value = float(value)
        except ValueError:
            return False
    return isinstance(value, (int, float)) and value == 0


def _number(key: str, value: Any, *, integer: bool = False) -> float | int:
    if isinstance(value, bool):
        raise _bad_key(key, "a list of numbers", value)
    if integer and (isinstance(value, int) or isinstance(value, str) and value.strip().lstrip("+-").isdigit()):
        return int(value)  # exactly: through a float, 99999999999999999999 would read as 10**20
    try:
        number = float(value)
    except (TypeError, ValueError):
        expected = "a list of numbers" + (" or 'auto'" if key in ("strengths", "top_k") else "")
        raise _bad_key(key, expected, value) from None
    if integer:
        if not number.is_integer():
            raise _bad_key(key, "a list of integers", value)
        return int(number)
    return number


@dataclass(frozen=True)
class HeadSpec:
    """A parsed head-set label: ``qrscore:K``, ``retrieval:K``, ``published:NAME``, ``random:K`` or a file path."""

    label: str
    kind: str
    k: int | None = None
    name: str = ""


def parse_head_spec(label: str) -> HeadSpec:
    """Parse a head-set label (no file is read; ValueError naming the ``heads`` key on bad input)."""
    text = str(label).strip()
    kind, sep, rest = text.partition(":")
    if sep and kind in (*HEAD_LABEL_SCORES, "random"):
        if not rest.isdigit() or int(rest) < 1:
            raise _bad_key("heads", f"'{kind}:K' with K a positive integer", label)
        return HeadSpec(text, kind, k=int(rest))
    if sep and kind == "published":
        if not rest:
            raise _bad_key("heads", "'published:NAME'", label)
        return HeadSpec(text, "published", name=rest)
    if text in ("", "none"):
        raise _bad_key("heads", "a head-set label (qrscore:K, retrieval:K, published:NAME, random:K or a file)", label)
    return HeadSpec(text, "file", name=text)


@dataclass(frozen=True)
class CalibrationSpec:
    """Where ``qrscore:K`` / ``retrieval:K`` heads come from: an existing capture run (``capture``),
    or a calibration run made on the fly with these settings (its seed must differ from the
    evaluation seed)."""

    capture: str | None = None
    task: str = "passkey"
    lengths: tuple[int, ...] = (1024,)
    examples: int = 8
    seed: int = 0
    decode_steps: int | None = None  # None: 50 when retrieval heads are asked for, else 0


@dataclass(frozen=True)
class TuningSpec:
    """How ``auto`` strength / top-k are chosen: candidates scored on ``examples`` held-out
    examples per length, generated with ``seed`` (never the evaluation seed)."""

    examples: int = 8
    seed: int = 200
    strengths: tuple[float, ...] = DEFAULT_GRID
    top_k: tuple[int, ...] = (64, 256, 1024, 4096)


@dataclass(frozen=True)
class AblationConfig:
    """Every setting of an ablation grid; see the module docstring for the keys."""

    models: tuple[str, ...] = ("smollm2-135m",)
    tasks: tuple[str, ...] = ("passkey",)
    lengths: tuple[int, ...] = (1024,)
    methods: tuple[str, ...] = (method_with_role("baseline").name, DEFAULT_METHOD)
    heads: tuple[str, ...] = ("qrscore:8",)
    strengths: tuple[float | str, ...] = (3.0,)
    top_k: tuple[int | str | None, ...] = (256,)
    top_p: tuple[float | None, ...] = (0.975,)
    decay: tuple[float, ...] = (0.75,)
    temperature: tuple[float, ...] = (0.8,)
    examples: int = 10
    seed: int = 100
    max_new_tokens: int | None = None
    device: str = "auto"
    dtype: str = DEFAULT_DTYPE
    revision: str | None = None
    allow_other_model: bool = False
    gold_attention: int = 0
    dysco: Mapping[str, Any] = field(default_factory=dict)
    calibration: CalibrationSpec = field(default_factory=CalibrationSpec)
    tuning: TuningSpec = field(default_factory=TuningSpec)
    headline: Mapping[str, Any] = field(default_factory=dict)

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AblationConfig:
        """Build and validate from a mapping (e.g. parsed YAML); unknown keys are refused."""
        if not isinstance(d, Mapping):
            raise ValueError(f"An ablation config must be a mapping of keys to values. Got {type(d).__name__}.")
        known = {f.name for f in fields(cls)}
        for key in d:
            if key not in known:
                raise ValueError(f"Unknown key {key!r} in the ablation config. Known keys: {', '.join(sorted(known))}.")
        kw: dict[str, Any] = {}
        for key in ("models", "tasks", "methods", "heads"):
            if key in d:
                kw[key] = tuple(str(v) for v in _as_list(d[key]))
        if "lengths" in d:
            kw["lengths"] = tuple(_number("lengths", v, integer=True) for v in _as_list(d["lengths"]))
        if "strengths" in d:
            kw["strengths"] = tuple("auto" if v == "auto" else _number("strengths", v)
                                    for v in _as_list(d["strengths"]))
        if "top_k" in d:
            kw["top_k"] = tuple("auto" if v == "auto" else None if _off(v)
                                else _number("top_k", v, integer=True) for v in _as_list(d["top_k"]))
        if "top_p" in d:
            kw["top_p"] = tuple(None if _off(v) else _number("top_p", v) for v in _as_list(d["top_p"]))
        for key in ("decay", "temperature"):
            if key in d:
                kw[key] = tuple(_number(key, v) for v in _as_list(d[key]))
        for key in ("examples", "seed", "max_new_tokens", "gold_attention"):
            if key in d and d[key] is not None:
                kw[key] = _number(key, d[key], integer=True)
        for key in ("device", "dtype", "revision"):
            if key in d and d[key] is not None:
                if not isinstance(d[key], str):
                    raise _bad_key(key, "a string", d[key])
                kw[key] = d[key]
        if "allow_other_model" in d:
            if not isinstance(d["allow_other_model"], bool):  # bool("no") is True: only real booleans
                raise _bad_key("allow_other_model", "true or false (a YAML boolean, unquoted)", d["allow_other_model"])
            kw["allow_other_model"] = d["allow_other_model"]
        kw["dysco"] = _section(d, "dysco", _DYSCO_KEYS)
        kw["headline"] = _section(d, "headline", HEADLINE_AXES)
        cal = _section(d, "calibration", _CAL_KEYS)
        for key in ("capture", "task"):
            if cal.get(key) is not None and not isinstance(cal[key], str):
                what = "the path of a capture run (made by `headscope calibrate`)" if key == "capture" else \
                    "a task name or file"
                raise _bad_key(f"calibration.{key}", what, cal[key])
        if "lengths" in cal:
            cal["lengths"] = tuple(_number("calibration.lengths", v, integer=True) for v in _as_list(cal["lengths"]))
        for key in ("examples", "seed", "decode_steps"):
            if cal.get(key) is not None:
                cal[key] = _number(f"calibration.{key}", cal[key], integer=True)
        kw["calibration"] = CalibrationSpec(**cal)
        tune = _section(d, "tuning", _TUNE_KEYS)
        if "strengths" in tune:
            tune["strengths"] = tuple(_number("tuning.strengths", v) for v in _as_list(tune["strengths"]))
        if "top_k" in tune:
            tune["top_k"] = tuple(_number("tuning.top_k", v, integer=True) for v in _as_list(tune["top_k"]))
        for key in ("examples", "seed"):
            if key in tune:
                tune[key] = _number(f"tuning.{key}", tune[key], integer=True)
        kw["tuning"] = TuningSpec(**tune)
        cfg = cls(**kw)
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> AblationConfig:
        """Read a YAML config; ``overrides`` (non-None values) replace its keys before validation."""
        import yaml

        from .._yaml import load_yaml

        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"No ablation config at {str(p)!r}.")
        try:
            data = load_yaml(read_user_text(p), str(p))
        except yaml.YAMLError as err:
            raise ValueError(f"{p} is not valid YAML: {err}") from None
        if data is None or data == {}:
            # Refused rather than run: an empty file is more often a mistake than a wish for the
            # default grid (a calibration and 20 decodes, about 12 minutes), which needs no --config.
            raise ValueError(f"{p} is empty. An ablation config names at least the grid it runs, e.g. "
                             "`tasks: [passkey]` and `methods: [vanilla, dysco]` (every key: configs/smollm2-study.yaml"
                             "); to run the default grid, leave out --config.")
        if not isinstance(data, dict):
            raise ValueError(f"{p} must hold a mapping of ablation keys, not {type(data).__name__}.")
        return cls.from_dict(_with_overrides(data, overrides))

    def override(self, **changes: Any) -> AblationConfig:
        """A copy with some keys replaced (values as in the YAML file; ``None`` = keep)."""
        return AblationConfig.from_dict(_with_overrides(self.to_dict(), changes))

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-safe mapping; ``from_dict(to_dict())`` gives the same config."""
        d = asdict(self)
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = list(value)
        d["dysco"], d["headline"] = dict(self.dysco), dict(self.headline)
        d["calibration"] = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.calibration).items()}
        d["tuning"] = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.tuning).items()}
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # -- validation -------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ``ValueError`` naming the offending key; reads no model (head-set files and
        published lists are read, to check which model they were made for, and every record of
        a file task, so a bad file fails before a model loads or the output is touched)."""
        from ..evaluate.benchmarks import check_task_file, parse_task

        for key in AXES.values():
            if key != "heads" and not getattr(self, key):  # no heads: fine for grids without head methods
                raise ValueError(f"The {key!r} key of the ablation config is empty: the grid would have no cell.")
        for m in self.methods:
            if m not in METHODS:
                raise _bad_key("methods", f"a list of methods from {list(METHODS)}", m)
        for key in AXES.values():
            values = getattr(self, key)
            if len(set(values)) != len(values):
                raise _bad_key(key, "a list without repeats", list(values))
        from ..tasks import is_synthetic, parse_task_spec

        for t in self.tasks:
            if is_synthetic(t):
                try:
                    parse_task_spec(t)
                except ValueError as err:
                    raise _bad_key("tasks", "a list of tasks (TASK, TASK+key=value or FORMAT:PATH)", t) from err
            else:
                parse_task(t)
        for n in self.lengths:
            if n < 1:
                raise _bad_key("lengths", "a list of positive token counts", n)
        if self.gold_attention < 0:
            raise _bad_key("gold_attention", "an integer >= 0 (prompts per task and length; 0 = off)",
                           self.gold_attention)
        for s in self.strengths:
            if s != "auto" and not (math.isfinite(s) and s > 0):  # type: ignore[arg-type,operator]
                raise _bad_key("strengths", "a list of finite numbers > 0 (>= 99: hard mask) or 'auto'", s)
        for k in self.top_k:
            if k not in (None, "auto") and k < 1:  # type: ignore[operator]
                raise _bad_key("top_k", "a list of positive integers, 'none' or 'auto'", k)
        for p in self.top_p:
            if p is not None and not 0 < p <= 1:
                raise _bad_key("top_p", "a list of numbers in (0, 1] or 'none'", p)
        if any(k is None for k in self.top_k) and any(p is None for p in self.top_p):
            raise ValueError("The 'top_k' and 'top_p' keys both hold 'none': some cells would select no token. "
                             "Give top-k, top-p, or both.")
        labels = self.axis_labels()
        for axis, want in self.headline.items():
            if match(want, labels[axis]) is None:
                raise _bad_key(f"headline.{axis}", f"one of the grid's {axis} values {labels[axis]}", want)
        for g in self.decay:
            if not (math.isfinite(g) and g >= 0):
                raise _bad_key("decay", "a list of finite numbers >= 0", g)
        for t in self.temperature:  # type: ignore[assignment]
            if not t > 0:  # type: ignore[operator]
                raise _bad_key("temperature", "a list of numbers > 0 (sharpen's attention temperature)", t)
        from ..models import check_device

        check_device(self.device, what="The 'device' key of the ablation config", available=False)
        if self.dtype not in DTYPES:
            raise _bad_key("dtype", f"one of {list(DTYPES)}", self.dtype)
        for key, low in (("examples", 1), ("max_new_tokens", 1)):
            value = getattr(self, key)
            if value is not None and value < low:
                raise _bad_key(key, f"an integer >= {low}", value)
        self._validate_sizes()
        self._validate_dysco()
        self._validate_heads()
        self._validate_tuning()
        for t in self.tasks:  # last: the cheap checks first, then every record of every file task
            if not is_synthetic(t):
                check_task_file(t)

    def _validate_sizes(self) -> None:
        """Refuse counts nothing could hold, before any example is built (headscope/_limits.py)."""
        cal, tune = self.calibration, self.tuning
        for key, value, limit, unit in (
                ("examples", self.examples, MAX_EXAMPLES, "examples per task and length"),
                ("calibration.examples", cal.examples, MAX_EXAMPLES, "examples per length"),
                ("tuning.examples", tune.examples, MAX_EXAMPLES, "examples per length"),
                ("lengths", max(self.lengths, default=0), MAX_TOKENS, "tokens"),
                ("calibration.lengths", max(cal.lengths, default=0), MAX_TOKENS, "tokens"),
                ("max_new_tokens", self.max_new_tokens or 0, MAX_TOKENS, "tokens"),
                ("calibration.decode_steps", cal.decode_steps or 0, MAX_TOKENS, "steps")):
            check_count(f"The {key!r} key of the ablation config", value, limit, unit)

    def _validate_dysco(self) -> None:
        from ..dysco.config import DyscoConfig

        try:
            DyscoConfig(heads=[(0, 0)], **self.dysco)  # type: ignore[arg-type]
        except (TypeError, ValueError) as err:
            raise ValueError(f"The 'dysco' section of the ablation config is invalid: {err}") from None

    def _validate_heads(self) -> None:
        head_methods = [m for m in self.methods if m in HEAD_METHODS]
        if head_methods and not self.heads:
            raise ValueError(f"The 'heads' key of the ablation config is empty, but methods {head_methods} need a "
                             "head set (e.g. qrscore:8, published:NAME, random:8 or a file).")
        specs = [parse_head_spec(h) for h in self.heads]
        cal = self.calibration
        if any(s.kind in HEAD_LABEL_SCORES for s in specs):
            if cal.capture is None:
                if cal.examples < 1:
                    raise _bad_key("calibration.examples", "an integer >= 1", cal.examples)
                if not cal.lengths or min(cal.lengths) < 1:
                    raise _bad_key("calibration.lengths", "a list of positive token counts", list(cal.lengths))
                if cal.task in self.tasks and cal.seed == self.seed:
                    raise ValueError(
                        f"The 'calibration.seed' key equals the evaluation 'seed' ({self.seed}) for task {cal.task!r}: "
                        "heads would be calibrated on the evaluation examples. Choose another calibration seed.")
            else:
                self._check_capture(cal.capture)
        for spec in specs:
            if spec.kind in ("published", "file"):
                self._check_head_file(spec)

    def _check_capture(self, capture: str) -> None:
        path = Path(capture)
        info = path / "run.json"
        if not info.is_file():
            raise ValueError(f"The 'calibration.capture' key names {capture!r}, which holds no capture run "
                             "(no run.json). Make one with `headscope calibrate`.")
        run = json.loads(info.read_text())
        attrs, conf = run.get("attrs", {}), run.get("config", {})
        self._check_model("calibration.capture", str(attrs.get("model", "")))
        if conf.get("task") in self.tasks and conf.get("seed") == self.seed:
            raise ValueError(f"The 'calibration.capture' run {capture!r} used the evaluation seed {self.seed} on task "
                             f"{conf.get('task')!r}: heads would come from the evaluation examples. Change 'seed'.")

    def _check_head_file(self, spec: HeadSpec) -> None:
        from ..heads import resolve_heads

        try:
            hs = resolve_heads(spec.label)
        except (FileNotFoundError, ValueError) as err:
            raise ValueError(f"The 'heads' key holds {spec.label!r}, which cannot be read: {err}") from None
        if not hs.heads:
            raise ValueError(f"The 'heads' key holds {spec.label!r}, an empty head set.")
        self._check_model("heads", hs.model, spec.label)

    def _check_model(self, key: str, model: str, what: str = "") -> None:
        from ..heads import same_model

        if not model or self.allow_other_model:
            return
        for m in self.models:
            if not same_model(model, m):
                raise ValueError(
                    f"The {key!r} key holds {what or 'a run'} made for model {model!r}, but the grid runs model {m!r}. "
                    "Head indices do not transfer between models; set 'allow_other_model: true' if you mean it.")

    def _validate_tuning(self) -> None:
        tune = self.tuning
        if "auto" in self.strengths and not tune.strengths:
            raise _bad_key("tuning.strengths", "a non-empty list of candidate strengths", [])
        if "auto" in self.top_k and not tune.top_k:
            raise _bad_key("tuning.top_k", "a non-empty list of candidate top-k values", [])
        for s in tune.strengths:
            if not (math.isfinite(s) and s > 0):
                raise _bad_key("tuning.strengths", "a list of finite numbers > 0", s)
        for k in tune.top_k:
            if k < 1:
                raise _bad_key("tuning.top_k", "a list of positive integers", k)
        if tune.examples < 1:
            raise _bad_key("tuning.examples", "an integer >= 1", tune.examples)
        from ..tasks import is_synthetic

        files = [t for t in self.tasks if not is_synthetic(t)]
        if ("auto" in self.strengths or "auto" in self.top_k) and files:
            key = "strengths" if "auto" in self.strengths else "top_k"
            raise ValueError(f"The {key!r} key holds 'auto', which needs held-out examples of each task; file task "
                             f"{files[0]!r} has none apart from its evaluation records. Give explicit values.")
        if ("auto" in self.strengths or "auto" in self.top_k) and tune.seed == self.seed:
            raise ValueError(f"The 'tuning.seed' key equals the evaluation 'seed' ({self.seed}): 'auto' settings "
                             "would be chosen on the evaluation examples. Choose another tuning seed.")

    # -- grid ---------------------------------------------------------------------------------
    def axis_labels(self) -> dict[str, list[Any]]:
        """The coordinate labels of every grid axis (see :func:`headscope.ablate.grid.axis_labels`)."""
        return axis_labels(self)


def _with_overrides(data: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with the non-None ``changes`` applied. A change that replaces an axis may drop the
    value the headline names; that headline key is then dropped too (the report shows the axis's
    first value), instead of failing validation for a value the user did not write."""
    d = dict(data)
    d.update({k: v for k, v in changes.items() if v is not None})
    headline = d.get("headline") or {}
    if isinstance(headline, Mapping) and headline:
        labels = AblationConfig.from_dict({**d, "headline": {}}).axis_labels()
        d["headline"] = {axis: want for axis, want in headline.items()
                         if axis not in AXES or changes.get(AXES[axis]) is None
                         or match(want, labels[axis]) is not None}
    return d


def _section(d: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    sec = d.get(key) or {}
    if not isinstance(sec, Mapping):
        raise _bad_key(key, f"a mapping with keys from {list(allowed)}", sec)
    for k in sec:
        if k not in allowed:
            raise ValueError(f"Unknown key {key}.{k} in the ablation config. Known keys of {key!r}: "
                             f"{', '.join(allowed)}.")
    return dict(sec)
