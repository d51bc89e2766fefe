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


# ---------------------------------------------------------------------------
# The inner loop's knobs (minimaml.maml): the rate α in its forms, which parameters
# adapt, the weights of a multi-step query loss.

def _broadcast_prefix(prefix: Any, tree: Any) -> Any:
    """``prefix`` (a tree whose structure is a prefix of ``tree``'s) repeated down to
    ``tree``'s leaves; raises ValueError when it is not a prefix."""
    return jax.tree.map(lambda value, sub: jax.tree.map(lambda _: value, sub), prefix, tree)


def _concrete(leaf: Any) -> np.ndarray | None:
    return None if _is_traced(leaf) else np.asarray(leaf)


def check_adapt(params: Any, adapt: Any) -> tuple[bool, ...] | None:
    """Which leaves of ``params`` adapt in the inner loop: one bool per leaf (in
    ``jax.tree.leaves`` order), or None when every leaf adapts (plain MAML).

    ``adapt`` is None, a pytree of bools with the params' structure or a prefix of it
    (e.g. ``[False, False, True]`` for a three-layer list: only the last layer adapts),
    or a predicate ``adapt(path, leaf) -> bool`` on ``jax.tree_util`` key paths. (A
    callable pytree, such as an Equinox module of bools, is a mask, not a predicate.)
    """
    if adapt is None:
        return None
    if callable(adapt) and jax.tree.leaves(adapt) == [adapt]:   # a function, not a pytree
        flags = [adapt(path, leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(params)]
    else:
        try:
            flags = jax.tree.leaves(_broadcast_prefix(adapt, params))
        except (ValueError, TypeError):
            flags = None
        if flags is None or len(flags) != len(jax.tree.leaves(params)):
            raise ValueError(
                f"adapt must be a pytree of bools with the structure of params (or a prefix of "
                f"it, e.g. one bool per layer) or a predicate (path, leaf) -> bool; got "
                f"{jax.tree.structure(adapt)} for params {jax.tree.structure(params)}")
    if not all(isinstance(flag, (bool, np.bool_)) for flag in flags):
        raise ValueError(f"adapt must give a bool for every parameter; got {flags!r}")
    if not any(flags):
        raise ValueError("adapt freezes every parameter: at least one must adapt in the "
                         "inner loop (to adapt none, use inner_steps=0)")
    return None if all(flags) else tuple(bool(flag) for flag in flags)


def check_inner_lr(params: Any, inner_lr: Any, inner_steps: int,
                   lr_per_step: bool = False, positive: bool = True) -> Any:
    """The inner rate α checked, in one of two forms; returns it.

    - a number (or 0-d array): one α for every parameter — returned as it is;
    - a pytree with the params' structure, or a prefix of it (one rate per layer),
      whose leaves are ``()`` (one rate per tensor) or the parameter's own shape (one
      per entry, as in Meta-SGD) — returned broadcast to the params' structure.

    With ``lr_per_step`` either form carries a leading axis of length ``inner_steps``:
    row t is the rate of step t. Concrete rates must be finite and > 0 (finite only
    when not ``positive``: meta-learned rates may change sign); traced ones (learned
    rates inside ``jit``) are checked for shape only.
    """
    steps_axis = (inner_steps,) if lr_per_step else ()
    where = (f" with a leading axis of length inner_steps={inner_steps} (lr_per_step=True)"
             if lr_per_step else "")
    params_is_leaf = jax.tree.structure(params).num_nodes == 1
    if jax.tree.structure(inner_lr).num_nodes == 1 and not (
            params_is_leaf and np.shape(inner_lr)[len(steps_axis):] == np.shape(params)):
        if np.shape(inner_lr) != steps_axis:
            raise ValueError(f"inner_lr must be a number or a pytree of rates matching params"
                             f"{where}; got shape {np.shape(inner_lr)}")
        if not lr_per_step and positive:
            return check_positive(inner_lr, "inner_lr")
        full = inner_lr
    else:
        try:
            full = _broadcast_prefix(inner_lr, params)
        except (ValueError, TypeError):
            raise ValueError(
                f"inner_lr must be a number or a pytree with the structure of params (or a "
                f"prefix of it: one rate per layer){where}; got {jax.tree.structure(inner_lr)} "
                f"for params {jax.tree.structure(params)}") from None
        for path, rate, param in zip(jax.tree_util.tree_leaves_with_path(full),
                                     jax.tree.leaves(full), jax.tree.leaves(params)):
            allowed = (steps_axis, steps_axis + np.shape(param))
            if np.shape(rate) not in allowed:
                raise ValueError(
                    f"inner_lr{jax.tree_util.keystr(path[0])} must have shape {allowed[0]} (one "
                    f"rate for the tensor) or {allowed[1]} (one per entry){where}; got "
                    f"{np.shape(rate)}")
    for rate in jax.tree.leaves(full):
        values = _concrete(rate)
        if values is not None and not (np.all(np.isfinite(values))
                                       and (not positive or np.all(values > 0))):
            raise ValueError(f"inner_lr must be finite{' and > 0' * positive} everywhere; got "
                             f"a rate of "
                             f"{values.min() if np.all(np.isfinite(values)) else 'nan/inf'}")
    return full


def check_query_weights(query_weights: Any, inner_steps: int) -> Any:
    """Weights of the query loss after each of the ``inner_steps`` steps (MAML++'s
    multi-step loss): shape (inner_steps,), finite, >= 0, not all zero. None: only
    the query loss after the last step (plain MAML)."""
    if query_weights is None:
        return None
    if np.shape(query_weights) != (inner_steps,) or inner_steps < 1:
        raise ValueError(f"query_weights must have shape (inner_steps,) = ({inner_steps},): "
                         f"one weight per inner step; got shape {np.shape(query_weights)}")
    values = _concrete(query_weights)
    if values is not None and not (np.all(np.isfinite(values)) and np.all(values >= 0)
                                   and values.sum() > 0):
        raise ValueError(f"query_weights must be finite, >= 0 and not all zero; got "
                         f"{values.tolist()}")
    return query_weights
