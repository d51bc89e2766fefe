"""Argument checks shared by the library: bad input gets a ValueError naming the
argument and the allowed range."""
import math

import jax


def check_int(value, name, low):
    """Raise ValueError unless ``value`` is an integer (not a bool) >= ``low``."""
    try:
        ok = not isinstance(value, bool) and int(value) == value and value >= low
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")


def check_positive(value, name):
    """Raise ValueError unless a concrete number is finite and > 0.

    A traced value (inside ``jit``) cannot be checked and is let through, so that the
    widgets can move α without recompiling.
    """
    if isinstance(value, jax.core.Tracer):
        return
    try:
        ok = math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
