"""Networks as pure functions: ``init(key, ...) -> params`` and ``apply(params, x) -> y``.

Parameters are plain pytrees (lists of dicts of arrays), so ``jax.grad``,
``jax.vmap`` and ``optax`` work on them directly. Nothing here knows about MAML.
"""
from typing import Callable

import jax
import jax.numpy as jnp

from .checks import check_int
from .types import ArrayLike, PyTree


def mlp_init(key: jax.Array, sizes: tuple[int, ...] = (1, 40, 40, 1),
             weight_std: float = 0.01) -> PyTree:
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


def mlp_apply(params: PyTree, x: ArrayLike) -> jax.Array:
    """Forward pass with ReLU between layers and a linear output.

    x: (..., n_in) -> (..., n_out), e.g. (K, 1) -> (K, 1) for the sinusoid net.
    """
    *hidden, last = params
    for layer in hidden:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ last["w"] + last["b"]


# ---------------------------------------------------------------------------
# The paper's few-shot classifier (Omniglot): 4 x [3x3 conv, 64 filters, stride 2,
# BatchNorm, ReLU], a spatial mean, then a linear layer. Images are NHWC.

def conv2d_native(x: ArrayLike, w: ArrayLike, stride: int = 2) -> jax.Array:
    """3x3 "SAME" convolution with ``lax.conv_general_dilated`` (the GPU formulation).

    x: (B, H, W, C_in), w: (3, 3, C_in, C_out) -> (B, ceil(H/stride), ceil(W/stride), C_out).
    """
    return jax.lax.conv_general_dilated(
        x, w, window_strides=(stride, stride), padding="SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def conv2d_im2col(x: ArrayLike, w: ArrayLike, stride: int = 2) -> jax.Array:
    """The same convolution as :func:`conv2d_native`, as nine strided slices and one matmul.

    Why: under ``jax.vmap`` over tasks (per-task weights) a native convolution becomes
    a grouped convolution, which XLA's CPU backend runs ~15x slower than this form,
    whose matmul vmap turns into a batched matmul. Padding follows "SAME" (the extra
    row/column, if any, goes at the bottom/right, as in TensorFlow and XLA).

    x: (B, H, W, C_in), w: (kh, kw, C_in, C_out) -> (B, ceil(H/stride), ceil(W/stride), C_out).
    """
    kh, kw, c_in, c_out = w.shape
    _, h, wd, _ = x.shape
    out_h, out_w = -(-h // stride), -(-wd // stride)
    pad_h = max((out_h - 1) * stride + kh - h, 0)
    pad_w = max((out_w - 1) * stride + kw - wd, 0)
    x = jnp.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2),
                    (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    patches = jnp.concatenate(
        [x[:, i:i + (out_h - 1) * stride + 1:stride, j:j + (out_w - 1) * stride + 1:stride, :]
         for i in range(kh) for j in range(kw)], axis=-1)   # (B, out_h, out_w, kh*kw*C_in)
    return patches @ w.reshape(kh * kw * c_in, c_out)


def batch_norm(x: ArrayLike, scale: ArrayLike, offset: ArrayLike,
               eps: float = 1e-5) -> jax.Array:
    """BatchNorm with the current batch's statistics (no running averages), as in MAML.

    Mean and variance are taken over every axis but the last (channels), so each
    prediction depends on the other images in the batch: at test time this is
    transductive. x: (..., C); scale, offset: (C,).
    """
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axis=axes)
    var = jnp.mean(jnp.square(x - mean), axis=axes)
    return (x - mean) * jax.lax.rsqrt(var + eps) * scale + offset


def conv_init(key: jax.Array, num_classes: int = 5, in_channels: int = 1, filters: int = 64,
              blocks: int = 4) -> PyTree:
    """The paper's conv net: ``blocks`` conv blocks then a linear layer.

    Returns a list: ``blocks`` dicts ``{"w": (3, 3, C_in, filters), "scale": (filters,),
    "offset": (filters,)}`` and a last ``{"w": (filters, num_classes), "b": (num_classes,)}``.
    Conv weights are Glorot-uniform as in the official code; the convs carry no bias
    because the BatchNorm offset right after them would absorb it.
    """
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels),
                        ("filters", filters), ("blocks", blocks)):
        check_int(value, name, 1)
    keys = jax.random.split(key, blocks + 1)
    glorot = jax.nn.initializers.glorot_uniform()
    params = []
    c_in = in_channels
    for k in keys[:-1]:
        params.append({"w": glorot(k, (3, 3, c_in, filters), jnp.float32),
                       "scale": jnp.ones((filters,)), "offset": jnp.zeros((filters,))})
        c_in = filters
    params.append({"w": glorot(keys[-1], (filters, num_classes), jnp.float32),
                   "b": jnp.zeros((num_classes,))})
    return params


def conv_apply(params: PyTree, x: ArrayLike,
               conv: Callable[[ArrayLike, ArrayLike], jax.Array] | None = None) -> jax.Array:
    """Logits of the conv net. x: (B, H, W, C_in) -> (B, num_classes).

    Each block: 3x3 conv with stride 2 ("SAME"), BatchNorm over this batch, ReLU;
    28x28 -> 14 -> 7 -> 4 -> 2. Then the mean over the spatial positions (as the
    official code does for Omniglot) and a linear layer.

    ``conv`` picks the convolution: :func:`conv2d_im2col` on CPU and
    :func:`conv2d_native` elsewhere when left as None (the two agree to float
    rounding; see the tests).
    """
    if conv is None:
        conv = conv2d_im2col if jax.default_backend() == "cpu" else conv2d_native
    *blocks, last = params
    for block in blocks:
        x = conv(x, block["w"])
        x = jax.nn.relu(batch_norm(x, block["scale"], block["offset"]))
    return jnp.mean(x, axis=(1, 2)) @ last["w"] + last["b"]
