"""Omniglot's splits and its N-way K-shot task sampler.

Splits (the paper's Section 5.2, after Vinyals et al. 2016; rotations after Santoro et al.
2016): characters are ordered by their official id (1..1623, the ``NNNN`` of
``NNNN_DD.png``); ``np.random.default_rng(split_seed).permutation(1623)`` is drawn, its
first 1,200 positions are the meta-training characters and the remaining 423 the
meta-test characters — irrespective of alphabet, disjoint by construction. Classes are
augmented with rotations by multiples of 90°: every sampled character gets a random
quarter-turn, applied to all its drawings in that task.

Tasks: N-way K-shot with Q queries per class, sampled on device with ``jax.random``
(:func:`sample_tasks`): N distinct characters, each with its own rotation and K + Q
distinct drawings; label n goes to the n-th sampled character, so labels are a fresh
random permutation of the classes in every task.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..checks import check_int
from ..tasks import SupportQuery, TaskSampler, task_sampler as _task_sampler
from ..types import ArrayLike


def split_characters(num_characters: int, num_train: int = 1200,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint (train, test) index arrays into the characters (sorted by id).

    ``np.random.default_rng(seed).permutation(num_characters)``: the first
    ``num_train`` are meta-training characters, the rest meta-test. Each is returned
    sorted.
    """
    check_int(num_characters, "num_characters", 2)
    check_int(num_train, f"num_train (characters: {num_characters})", 1, num_characters - 1)
    order = np.random.default_rng(seed).permutation(num_characters)
    return np.sort(order[:num_train]), np.sort(order[num_train:])


class _OmniglotFields(NamedTuple):
    support_x: jax.Array
    support_y: jax.Array
    query_x: jax.Array
    query_y: jax.Array
    characters: jax.Array
    rotations: jax.Array
    drawers: jax.Array


class OmniglotTasks(SupportQuery, _OmniglotFields):
    """A batch of N-way K-shot tasks; the leading axis indexes tasks.

    support_x: (T, N*K, 28, 28, 1), support_y: (T, N*K) int32 labels in [0, N);
    query_x: (T, N*Q, 28, 28, 1), query_y: (T, N*Q); class-major order (the K
    support images of label 0 first). characters: (T, N) rows of the image array
    (label n is character ``characters[:, n]``); rotations: (T, N) quarter turns;
    drawers: (T, N, K+Q) drawings used, the first K for support.
    """
    __slots__ = ()


def check_task_shape(images: ArrayLike, ways: int, shots: int, queries: int) -> None:
    """Raise ValueError unless ``images`` (C, D, H, W) can give N-way tasks with K + Q
    distinct drawings per class."""
    check_int(ways, "ways (N)", 2)
    check_int(shots, "shots (K)", 1)
    check_int(queries, "queries (per class)", 1)
    if np.ndim(images) != 4:
        raise ValueError(f"images must be (characters, drawings, H, W); got shape "
                         f"{np.shape(images)}")
    num_chars, drawings = np.shape(images)[:2]
    if ways > num_chars:
        raise ValueError(f"ways (N) must be at most the {num_chars} characters available; "
                         f"got {ways}")
    if shots + queries > drawings:
        raise ValueError(f"shots + queries must be at most the {drawings} drawings per "
                         f"character; got {shots} + {queries}")


def _sample_tasks(key, images, num_tasks, ways, shots, queries):
    num_chars, drawings = images.shape[:2]
    k_char, k_rot, k_draw = jax.random.split(key, 3)
    characters = jax.vmap(lambda k: jax.random.choice(k, num_chars, (ways,), replace=False))(
        jax.random.split(k_char, num_tasks)).astype(jnp.int32)
    rotations = jax.random.randint(k_rot, (num_tasks, ways), 0, 4, dtype=jnp.int32)
    drawers = jnp.argsort(jax.random.uniform(k_draw, (num_tasks, ways, drawings)),
                          axis=-1)[..., :shots + queries].astype(jnp.int32)
    x = jnp.asarray(images)[characters[..., None], drawers]        # (T, N, K+Q, H, W)
    turned = jnp.stack([jnp.rot90(x, k, axes=(-2, -1)) for k in range(4)])
    x = turned[rotations, jnp.arange(num_tasks)[:, None], jnp.arange(ways)[None, :]]
    x = x[..., None].astype(jnp.float32)
    y = jnp.broadcast_to(jnp.arange(ways, dtype=jnp.int32)[None, :, None],
                         x.shape[:3])
    h, w = x.shape[-3:-1]
    support_x = x[:, :, :shots].reshape(num_tasks, ways * shots, h, w, 1)
    query_x = x[:, :, shots:].reshape(num_tasks, ways * queries, h, w, 1)
    return OmniglotTasks(support_x, y[:, :, :shots].reshape(num_tasks, -1), query_x,
                         y[:, :, shots:].reshape(num_tasks, -1), characters, rotations,
                         drawers)


def sample_tasks(key: jax.Array, images: ArrayLike, num_tasks: int, ways: int, shots: int,
                 queries: int = 1) -> OmniglotTasks:
    """Draw ``num_tasks`` N-way K-shot tasks from ``images`` (C, D, H, W), all at once.

    Per task: N distinct characters (a random order, which is the label permutation),
    a random quarter-turn each, and K + Q distinct drawings of each (K support, Q query).
    Pure ``jax.random`` and gathers: jit-able, no Python loop over tasks.
    """
    check_int(num_tasks, "num_tasks", 1)
    check_task_shape(images, ways, shots, queries)
    return _sample_tasks(key, images, int(num_tasks), int(ways), int(shots), int(queries))


def task_sampler(images: ArrayLike, num_tasks: int, ways: int, shots: int,
                 queries: int = 1) -> TaskSampler:
    """``key -> (support, query)``, the form :func:`minimaml.train.optimize` wants.

    ``images`` travels as an argument of the jitted training step, not as a constant.
    """
    check_int(num_tasks, "meta_batch", 1)
    check_task_shape(images, ways, shots, queries)
    return _task_sampler(_sample_tasks, jnp.asarray(images), num_tasks=int(num_tasks),
                         ways=int(ways), shots=int(shots), queries=int(queries))


def query_groups(query_x: ArrayLike, query_y: ArrayLike, ways: int,
                 group_queries: int) -> tuple[jax.Array, jax.Array]:
    """Split one task's class-major query set into batches of ``group_queries`` per class.

    query_x: (N*Q, H, W, 1) -> (Q/g, N*g, H, W, 1); query_y likewise (Q/g, N*g).
    """
    q = query_y.shape[0] // ways
    groups = q // group_queries

    def regroup(a):
        a = a.reshape(ways, groups, group_queries, *a.shape[1:])
        return jnp.swapaxes(a, 0, 1).reshape(groups, ways * group_queries, *a.shape[3:])
    return regroup(query_x), regroup(query_y)
