"""The sinusoid task distribution p(T) of the paper (Section 5.1) and its regressor.

p(T): amplitude A ~ U[0.1, 5.0], phase φ ~ U[0, π], inputs x ~ U[-5, 5],
targets y = A·sin(x − φ). Each task gives K support points (to fine-tune on) and Q
query points (to measure the adapted model on). The regressor is the paper's MLP
1-40-40-1 with ReLU, the loss is mean squared error.
"""
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..checks import check_int
from ..losses import mse_loss
from ..nets import mlp_apply, mlp_init
from ..tasks import SupportQuery, TaskSampler, task_sampler as _task_sampler
from ..types import ArrayLike, PyTree

AMPLITUDE_RANGE = (0.1, 5.0)
PHASE_RANGE = (0.0, math.pi)
INPUT_RANGE = (-5.0, 5.0)

sine_loss = mse_loss(mlp_apply)
"""``sine_loss(params, (x, y))`` or ``(x, y, weights)``: the MLP's mean squared error."""


class _SineFields(NamedTuple):
    amplitude: jax.Array
    phase: jax.Array
    support_x: jax.Array
    support_y: jax.Array
    query_x: jax.Array
    query_y: jax.Array


class SineTasks(SupportQuery, _SineFields):
    """A batch of sinusoid tasks; the leading axis indexes tasks.

    amplitude, phase: (T,); support_x, support_y: (T, K, 1); query_x, query_y: (T, Q, 1).
    ``.support`` and ``.query`` are the (x, y) pairs.
    """
    __slots__ = ()


def sine(x: ArrayLike, amplitude: ArrayLike, phase: ArrayLike) -> jax.Array:
    """The task's true function y = A·sin(x − φ) (broadcasts)."""
    return amplitude * jnp.sin(x - phase)


def _sample_tasks(key, num_tasks, support_size, query_size):
    k_amp, k_phase, k_x = jax.random.split(key, 3)
    amplitude = jax.random.uniform(k_amp, (num_tasks,), minval=AMPLITUDE_RANGE[0],
                                   maxval=AMPLITUDE_RANGE[1])
    phase = jax.random.uniform(k_phase, (num_tasks,), minval=PHASE_RANGE[0],
                               maxval=PHASE_RANGE[1])
    x = jax.random.uniform(k_x, (num_tasks, support_size + query_size, 1),
                           minval=INPUT_RANGE[0], maxval=INPUT_RANGE[1])
    y = sine(x, amplitude[:, None, None], phase[:, None, None])
    return SineTasks(amplitude, phase, x[:, :support_size], y[:, :support_size],
                     x[:, support_size:], y[:, support_size:])


def _check_sizes(num_tasks, support_size, query_size, tasks_name="num_tasks"):
    return (check_int(num_tasks, tasks_name, 1), check_int(support_size, "support_size (K)", 1),
            check_int(query_size, "query_size (Q)", 1))


def sample_tasks(key: jax.Array, num_tasks: int, support_size: int,
                 query_size: int) -> SineTasks:
    """Draw ``num_tasks`` tasks from p(T), each with K support and Q query points.

    Returns a :class:`SineTasks` of arrays, all drawn from the one ``key``.
    """
    return _sample_tasks(key, *_check_sizes(num_tasks, support_size, query_size))


def task_sampler(num_tasks: int, support_size: int, query_size: int) -> TaskSampler:
    """``key -> (support, query)``, the form :func:`minimaml.train.optimize` wants."""
    num_tasks, support_size, query_size = _check_sizes(num_tasks, support_size, query_size,
                                                       "meta_batch")
    return _task_sampler(_sample_tasks, num_tasks=num_tasks, support_size=support_size,
                         query_size=query_size)


def init_params(key: jax.Array, hidden: tuple[int, ...] = (40, 40)) -> PyTree:
    """The paper's regressor 1-40-40-1 (or 1-hidden-1) freshly initialised."""
    return mlp_init(key, (1, *hidden, 1))
