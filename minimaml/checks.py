"""The library's argument checks: bad input gets one ValueError naming the argument and
what is allowed. Public entry points call these; the layers below trust their inputs."""
import math
from typing import Any, Iterable

import jax
import numpy as np


class ArgumentError(ValueError):
    """``name`` must be ``allowed``; got ``value`` (``note`` adds why, when it helps)."""

    def __init__(self, name: str, allowed: str, value: Any, note: str = ""):
        self.name, self.allowed, self.value, self.note = name, allowed, value, note
        super().__init__(f"{name} must be {allowed}; got {value!r}{note}")


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
        raise ArgumentError(name, f"an integer {allowed}", value)
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
        raise ArgumentError(name, "a finite number > 0", value)
    return value


def check_number(value: Any, name: str, low: float, high: float = math.inf) -> float:
    """Return ``value`` as a float; raise ValueError unless it is a number (not NaN) in
    ``[low, high]`` (an infinite ``high`` admits any finite number above ``low``)."""
    number = _as_float(value)
    if isinstance(value, np.floating):   # bounds as the value's precision holds them:
        low, high = float(value.dtype.type(low)), float(value.dtype.type(high))  # float32(0.1)
    if number is None or not (low <= number <= high) or not math.isfinite(number):
        allowed = f"a finite number >= {low:g}" if high == math.inf \
            else f"a number in {low:g}..{high:g}"
        raise ArgumentError(name, allowed, value)
    return number


def check_choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """Raise ValueError unless ``value`` is one of ``choices``; return it."""
    choices = tuple(choices)
    if value not in choices:
        raise ArgumentError(name, f"one of {', '.join(map(str, choices))}", value)
    return value
