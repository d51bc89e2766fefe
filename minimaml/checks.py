"""The library's argument checks: bad input gets one ValueError naming the argument and
what is allowed. Public entry points call these; the layers below trust their inputs."""
import math
from typing import Any, Iterable

import jax
import numpy as np


def _is_traced(value: Any) -> bool:
    return isinstance(value, jax.core.Tracer)


def check_int(value: Any, name: str, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int; raise ValueError unless it is an integer (not a bool)
    in ``low..high`` (no upper bound when ``high`` is None)."""
    try:
        ok = (not isinstance(value, (bool, np.bool_)) and int(value) == value
              and value >= low and (high is None or value <= high))
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        allowed = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be an integer {allowed}; got {value!r}")
    return int(value)


def _as_float(value: Any) -> float | None:
    if isinstance(value, (bool, np.bool_, str, bytes)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def check_positive(value: Any, name: str) -> Any:
    """Raise ValueError unless a concrete number is finite and > 0; return it.

    A traced value (inside ``jit``) cannot be checked and is let through, so that the
    widgets can move α without recompiling.
    """
    if _is_traced(value):
        return value
    number = _as_float(value)
    if number is None or not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    return value


def check_number(value: Any, name: str, low: float, high: float = math.inf) -> float:
    """Return ``value`` as a float; raise ValueError unless it is a number (not NaN) in
    ``[low, high]`` (an infinite ``high`` admits any finite number above ``low``)."""
    number = _as_float(value)
    if number is None or not (low <= number <= high) or not math.isfinite(number):
        allowed = f"a finite number >= {low:g}" if high == math.inf \
            else f"a number in {low:g}..{high:g}"
        raise ValueError(f"{name} must be {allowed}; got {value!r}")
    return number


def check_choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """Raise ValueError unless ``value`` is one of ``choices``; return it."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value
