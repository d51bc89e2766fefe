"""Losses with the signature the MAML code expects: ``loss_fn(params, batch) -> scalar``.

Each builder returns a small frozen dataclass rather than a closure: two losses built
from the same ``apply_fn`` compare equal, so jitted code keyed on the loss (the
training chunk, the meta-test) compiles once for both.
"""
import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from .types import ArrayLike, Batch, PyTree

ApplyFn = Callable[[PyTree, ArrayLike], jax.Array]


def _check_shapes(name: str, x: ArrayLike, y: ArrayLike, prediction: ArrayLike | None) -> None:
    x_shape, y_shape = jnp.shape(x), jnp.shape(y)
    if len(x_shape) < 1 or len(y_shape) < 1 or x_shape[:len(y_shape) - 1] != y_shape[:-1]:
        raise ValueError(f"{name}: x and y must agree in every dimension but the last "
                         f"(one row of y per row of x); got x: {x_shape}, y: {y_shape}")
    if prediction is not None and jnp.shape(prediction) != y_shape:
        raise ValueError(f"{name}: the network's output {jnp.shape(prediction)} does not match "
                         f"y {y_shape}; do params fit the network (layers, output width)?")


@dataclasses.dataclass(frozen=True)
class MeanSquaredError:
    """Mean squared error of ``apply_fn(params, x)`` against ``y``.

    ``loss(params, batch)`` takes ``batch = (x, y)`` or ``(x, y, weights)``, with
    x: (n, d_in), y: (n, d_out), weights: (n,). Weights (e.g. a 0/1 mask over padded
    points) give a weighted mean over the n examples.
    """
    apply_fn: ApplyFn

    def __call__(self, params: PyTree, batch: Batch) -> jax.Array:
        x, y, *weights = batch
        prediction = self.apply_fn(params, x)
        _check_shapes("mse_loss", x, y, prediction)
        squared = jnp.mean((prediction - y) ** 2, axis=-1)
        if not weights:
            return jnp.mean(squared)
        (w,) = weights
        return jnp.sum(w * squared) / jnp.maximum(jnp.sum(w), 1e-12)


@dataclasses.dataclass(frozen=True)
class CrossEntropy:
    """Mean softmax cross-entropy of the logits ``apply_fn(params, x)``: (n, classes)
    against integer labels ``y``: (n,) in ``[0, classes)``; ``batch = (x, y)``."""
    apply_fn: ApplyFn

    def __call__(self, params: PyTree, batch: Batch) -> jax.Array:
        x, y = batch
        logits = self.apply_fn(params, x)
        if jnp.ndim(logits) != 2 or jnp.shape(logits)[:1] != jnp.shape(y):
            raise ValueError(f"cross_entropy_loss: logits {jnp.shape(logits)} must be "
                             f"(n, classes) for labels y {jnp.shape(y)}")
        log_probs = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))


def mse_loss(apply_fn: ApplyFn) -> MeanSquaredError:
    """``loss_fn(params, (x, y[, weights]))``: the mean squared error of ``apply_fn``."""
    return MeanSquaredError(apply_fn)


def cross_entropy_loss(apply_fn: ApplyFn) -> CrossEntropy:
    """``loss_fn(params, (x, y))``: mean softmax cross-entropy, y int labels (n,)."""
    return CrossEntropy(apply_fn)
