"""Networks as pure functions: ``init(key, ...) -> params`` and ``apply(params, x) -> y``.

Parameters are plain pytrees (lists of dicts of arrays), so ``jax.grad``,
``jax.vmap`` and ``optax`` work on them directly. Nothing here knows about MAML.
"""
import jax
import jax.numpy as jnp


def mlp_init(key, sizes=(1, 40, 40, 1), weight_std=0.01):
    """An MLP's parameters: a list of ``{"w": (n_in, n_out), "b": (n_out,)}`` dicts.

    Weights are truncated-normal (cut at two standard deviations) with standard
    deviation ``weight_std`` before truncation and biases zero, as in the official
    MAML code (``tf.truncated_normal(stddev=0.01)``). The paper's sinusoid network
    is ``sizes=(1, 40, 40, 1)``.
    """
    sizes = tuple(int(n) for n in sizes)
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must hold at least two layer widths, each >= 1; got {sizes}")
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {
            "w": weight_std * jax.random.truncated_normal(k, -2.0, 2.0, (n_in, n_out)),
            "b": jnp.zeros((n_out,)),
        }
        for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])
    ]


def mlp_apply(params, x):
    """Forward pass with ReLU between layers and a linear output.

    x: (..., n_in) -> (..., n_out), e.g. (K, 1) -> (K, 1) for the sinusoid net.
    """
    *hidden, last = params
    for layer in hidden:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ last["w"] + last["b"]
