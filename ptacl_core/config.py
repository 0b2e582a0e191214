"""One override API for every typed config of the kit (``TrainConfig``, ``PreprocessConfig``, ``ProbeConfig``,
``SynthConfig``, ``ModelConfig``): frozen dataclasses changed with ``dataclasses.replace``, nested sections
addressed by dotted keys.

    override(config, {"optim.epochs": 3, "loss.lam": 0.5})      # values, as notebooks pass them
    override(config, parse_overrides(config, ["optim.epochs=3"]))  # ``key=value`` strings, as the CLI gets them

An unknown section or key is a clear ``ValueError`` naming it; the dataclass's own ``__post_init__`` checks run
on the new values (``check_number``, ``check_choice``, ``check_kind``: the range and kind checks they share, one
line naming the field).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

Config = TypeVar("Config")


def override(config: Config, values: Mapping[str, Any], _prefix: str = "") -> Config:
    """A copy of ``config`` with ``values`` ({"section.key": value}) replaced; nested dataclasses are rebuilt
    with ``dataclasses.replace``, so validation runs again."""
    nested: dict[str, dict[str, Any]] = {}
    direct: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(config)}
    for key, value in values.items():
        head, _, rest = key.partition(".")
        if head not in names:
            kind = "section" if rest else "key"
            raise ValueError(f"unknown config {kind} {head!r} in {key!r} for {type(config).__name__}; "
                             f"known: {sorted(names)}")
        if rest:
            if not dataclasses.is_dataclass(getattr(config, head)):
                raise ValueError(f"unknown config section {head!r} in {key!r}: {head} is a value, not a section")
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = checked_value(_prefix + key, value, getattr(config, head))
    changes = dict(direct)
    for head, inner in nested.items():
        changes[head] = override(direct.get(head, getattr(config, head)), inner, f"{_prefix}{head}.")
    return dataclasses.replace(config, **changes)


def checked_value(key: str, value: Any, current: Any) -> Any:
    """``value`` for a field whose current value is ``current``, of the same kind (an int may stand for a float,
    a list for a tuple); a field that is None by default takes anything. A wrong kind is a ValueError."""
    def wrong(kind: str) -> ValueError:
        return ValueError(f"{key} expects {kind}, got {value!r} ({type(value).__name__})")

    if current is None or value is None:
        return value
    if dataclasses.is_dataclass(current):
        if type(value) is not type(current):
            raise wrong(type(current).__name__)
        return value
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if isinstance(current, numbers.Integral):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise wrong("an integer")
        return int(value)
    if isinstance(current, numbers.Real):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise wrong("a number")
        return float(value)
    if isinstance(current, str):
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if isinstance(current, tuple):
        if not isinstance(value, (tuple, list)):
            raise wrong("a sequence")
        return tuple(value)
    if isinstance(current, dict) and not isinstance(value, dict):
        raise wrong("a mapping")
    return value


def parse_overrides(config: Any, items: Iterable[str]) -> dict[str, Any]:
    """``["optim.epochs=3", "augment=false"]`` -> {"optim.epochs": 3, "augment": False}, each value typed like
    the field's current value in ``config`` (bool, int, float, None, else str)."""
    values = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        values[key] = parse_value(raw, _current(config, key))
    return values


def _current(config: Any, key: str) -> Any:
    target = config
    *path, last = key.split(".")
    for part in path:
        if not dataclasses.is_dataclass(target) or part not in {f.name for f in dataclasses.fields(target)}:
            raise ValueError(f"unknown config section {part!r} in {key!r}")
        target = getattr(target, part)
    if not dataclasses.is_dataclass(target) or last not in {f.name for f in dataclasses.fields(target)}:
        raise ValueError(f"unknown config key {key!r}")
    return getattr(target, last)


def parse_value(raw: str, current: Any) -> Any:
    """A command-line string typed like ``current`` (the value it replaces)."""
    if raw.lower() in ("none", "null"):
        return None
    if isinstance(current, bool):
        if raw.lower() not in ("true", "false"):
            raise ValueError(f"expected true or false, got {raw!r}")
        return raw.lower() == "true"
    if isinstance(current, int):
        try:
            return int(raw)
        except ValueError as error:
            raise ValueError(f"expected an integer, got {raw!r}") from error
    if isinstance(current, float) or current is None:
        try:
            return float(raw)
        except ValueError:
            return raw
    if isinstance(current, tuple):
        return tuple(parse_value(part, current[0] if current else None) for part in raw.split(",") if part)
    return raw


# --- range checks the configs' ``__post_init__`` share -----------------------------------------------------------

def check_number(key: str, value: Any, *, integer: bool = False, minimum: float | None = None,
                 maximum: float | None = None, above: float | None = None, below: float | None = None) -> None:
    """A ValueError naming ``key`` unless ``value`` is a finite number (an integer when ``integer``; never a bool)
    with minimum <= value <= maximum and above < value < below (each bound optional). A config file can hold any
    JSON value, so the kind is checked here too, not only by ``override``."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral if integer else numbers.Real):
        raise ValueError(f"{key} must be {kind}, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, got {value}")
    bounds = [(minimum, "at least", value >= minimum if minimum is not None else True),
              (maximum, "at most", value <= maximum if maximum is not None else True),
              (above, "more than", value > above if above is not None else True),
              (below, "less than", value < below if below is not None else True)]
    if not all(ok for _, _, ok in bounds):
        wanted = " and ".join(f"{sign} {_shown(bound)}" for bound, sign, _ in bounds if bound is not None)
        raise ValueError(f"{key} must be {wanted}, got {_shown(value)}")


def _shown(number: float) -> str:
    """An integer as it is, a float in ``g`` format."""
    return str(int(number)) if isinstance(number, numbers.Integral) else f"{number:g}"


def check_keys(section: str, values: Any, config_type: type) -> dict:
    """``values`` (a section of a config file) as a dict, after checking it is a mapping whose keys are fields of
    ``config_type``: a ValueError naming ``section`` and the unknown keys (a typo in a file would otherwise be
    dropped or fail as a TypeError)."""
    if not isinstance(values, Mapping):
        raise ValueError(f"config section {section} must be a mapping, got {values!r} ({type(values).__name__})")
    names = {f.name for f in dataclasses.fields(config_type)}
    unknown = sorted(str(key) for key in values if key not in names)
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} in {section}; known: {sorted(names)}")
    return dict(values)


def check_choice(key: str, value: Any, choices: Iterable[Any]) -> None:
    """A ValueError naming ``key`` unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if isinstance(value, bool) or value not in choices:
        raise ValueError(f"{key} must be one of {choices}, got {value!r}")


def check_kind(key: str, value: Any, kind: type | tuple[type, ...]) -> None:
    """A ValueError naming ``key`` unless ``value`` is an instance of ``kind`` (a bool only where bool is asked)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ValueError(f"{key} must be {names}, got {value!r} ({type(value).__name__})")
