"""Losses with the signature the MAML code expects: ``loss_fn(params, batch) -> scalar``."""
import jax.numpy as jnp


def check_xy(x, y, x_name="x", y_name="y"):
    """Raise ValueError unless x and y hold the same number of examples.

    x: (..., n, d_in), y: (..., n, d_out) — all leading dimensions must agree.
    """
    x_shape, y_shape = jnp.shape(x), jnp.shape(y)
    if len(x_shape) < 1 or len(y_shape) < 1 or x_shape[:-1] != y_shape[:-1]:
        raise ValueError(
            f"{x_name} and {y_name} must agree in every dimension but the last "
            f"(one row of {y_name} per row of {x_name}); got {x_name}: {x_shape}, "
            f"{y_name}: {y_shape}")


def mse_loss(apply_fn):
    """Mean squared error of ``apply_fn(params, x)`` against ``y``.

    The returned ``loss_fn(params, batch)`` takes ``batch = (x, y)`` or
    ``(x, y, weights)``, with x: (n, d_in), y: (n, d_out), weights: (n,). Weights
    (e.g. a 0/1 mask over padded points) give a weighted mean over the n examples.
    """
    def loss_fn(params, batch):
        x, y, *weights = batch
        check_xy(x, y)
        squared = jnp.mean((apply_fn(params, x) - y) ** 2, axis=-1)
        if not weights:
            return jnp.mean(squared)
        (w,) = weights
        return jnp.sum(w * squared) / jnp.maximum(jnp.sum(w), 1e-12)
    return loss_fn
