"""Baselines for MAML's meta-test, on its tasks and with its protocol.

- **transfer**: the same conv net trained on all meta-training characters as one big
  classification problem (:func:`pretrain_classifier`, a 1,200-way head), then its head
  replaced by a zero N-way head (:func:`new_head`) and the whole net fine-tuned with SGD
  on each task's support set;
- **scratch**: the same fine-tuning from a fresh random init;
- **nearest class mean**: no fine-tuning at all; each query gets the label of the
  closest mean support feature (:func:`nearest_class_mean_accuracies`), the features
  being the 64 numbers the head reads (:func:`conv_features`).

BatchNorm uses the statistics of the batch it is given (:func:`minimaml.nets.batch_norm`):
at meta-test that batch is a task's N·K support images or a group of N query images.
So the transfer net is pretrained on the same kind of batch: each step draws
``groups`` groups of ``group_size`` images and normalises each group on its own
(the group is a "task" to :func:`minimaml.train.pretrain`), rather than one large
batch whose statistics the test never sees.
"""
import dataclasses
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..checks import check_int, check_positive
from ..maml import _inner_loop
from ..nets import conv_apply, conv_init
from ..train import pretrain
from ..types import ArrayLike, OnChunk, PyTree
from .model import GroupedAccuracy, classifier
from .tasks import OmniglotTasks, query_groups


@partial(jax.tree_util.register_dataclass, data_fields=["images"],
         meta_fields=["groups", "group_size"])
@dataclasses.dataclass(frozen=True)
class ClassBatches:
    """``sampler(key) -> ((), (x, y))``: ``groups`` groups of ``group_size`` images, each a
    random character (its index in ``images`` is the label), drawing and quarter-turn.

    x: (groups, group_size, H, W, 1), y: (groups, group_size) int32. The form
    :func:`minimaml.train.pretrain` consumes (the query set; there is no support set).
    """
    images: jax.Array
    groups: int
    group_size: int

    def __call__(self, key: jax.Array) -> tuple[tuple, tuple[jax.Array, jax.Array]]:
        num_chars, drawings = self.images.shape[:2]
        shape = (self.groups, self.group_size)
        k_char, k_draw, k_rot = jax.random.split(key, 3)
        characters = jax.random.randint(k_char, shape, 0, num_chars, dtype=jnp.int32)
        drawers = jax.random.randint(k_draw, shape, 0, drawings)
        turns = jax.random.randint(k_rot, shape, 0, 4)
        x = self.images[characters, drawers]                           # (G, S, H, W)
        turned = jnp.stack([jnp.rot90(x, k, axes=(-2, -1)) for k in range(4)])
        x = jnp.take_along_axis(turned, turns[None, :, :, None, None], axis=0)[0]
        return (), (x[..., None].astype(jnp.float32), characters)


def pretrain_classifier(train_images: ArrayLike, key: jax.Array, *, steps: int,
                        groups: int = 32, group_size: int = 5, lr: float = 1e-3,
                        filters: int = 64, blocks: int = 4, steps_per_call: int = 100,
                        on_chunk: OnChunk | None = None) -> tuple[PyTree, np.ndarray]:
    """The transfer baseline's network: the conv net with one output per training
    character, trained with Adam(lr) on softmax cross-entropy over random drawings
    (random quarter-turns as augmentation; a turned character keeps its label).

    ``train_images``: (C, D, H, W), the meta-training characters only. Returns
    ``(params, losses)``, params with a C-way head.
    """
    check_int(steps, "steps", 1)
    check_int(groups, "groups", 1)
    check_int(group_size, "group_size", 2)
    check_positive(lr, "lr")
    if np.ndim(train_images) != 4:
        raise ValueError(f"train_images must be (characters, drawings, H, W); got shape "
                         f"{np.shape(train_images)}")
    k_init, k_train = jax.random.split(key)
    params = conv_init(k_init, int(np.shape(train_images)[0]), filters=filters, blocks=blocks)
    _, loss_fn = classifier()
    sampler = ClassBatches(jnp.asarray(train_images), int(groups), int(group_size))
    params, _, losses = pretrain(params, loss_fn, sampler, k_train, steps=steps, lr=lr,
                                 steps_per_call=steps_per_call, on_chunk=on_chunk)
    return params, losses


def new_head(params: PyTree, ways: int) -> PyTree:
    """``params`` with its last (linear) layer replaced by a zero ``ways``-way head: every
    class starts equally likely, and the first SGD step moves the head only."""
    check_int(ways, "ways", 2)
    *body, head = params
    filters = np.shape(head["w"])[0]
    return [*body, {"w": jnp.zeros((filters, ways)), "b": jnp.zeros((ways,))}]


def conv_features(params: PyTree, x: ArrayLike, conv: Callable | None = None) -> jax.Array:
    """What the conv net's head reads: (B, H, W, 1) -> (B, filters), the spatial mean of
    the last block (the net of ``params`` with an identity head)."""
    *body, head = params
    filters = np.shape(head["w"])[0]
    identity = {"w": jnp.eye(filters), "b": jnp.zeros((filters,))}
    return conv_apply([*body, identity], x, conv=conv)


@partial(jax.jit, static_argnames=("ways", "group_queries", "steps", "task_chunk"))
def _accuracies_after(params, tasks, inner_lr, *, ways, group_queries, steps, task_chunk):
    apply_fn, loss_fn = classifier()
    accuracy = GroupedAccuracy(apply_fn, ways, group_queries)

    def one_task(task):
        support, query = task
        current, done, row = params, 0, []
        for n in steps:
            current = _inner_loop(current, loss_fn, support, inner_lr, n - done)
            row.append(accuracy(current, query))
            done = n
        return jnp.stack(row)

    return jax.lax.map(one_task, (tasks.support, tasks.query), batch_size=task_chunk)


def finetune_accuracies(params: PyTree, tasks: OmniglotTasks, ways: int, inner_lr: float,
                        steps: tuple[int, ...] = (0, 1, 3), group_queries: int = 1,
                        task_chunk: int = 50) -> np.ndarray:
    """Accuracy of each task after each of ``steps`` (increasing) SGD steps of size
    ``inner_lr`` on its support set, from ``params``: (T, len(steps)) numpy.

    The protocol of :func:`.model.task_accuracies` (support set as one batch, queries
    in groups of ``group_queries`` per class), measured only at the listed steps, so a
    long fine-tuning budget costs no more evaluations than a short one.
    """
    check_positive(inner_lr, "inner_lr")
    steps = tuple(check_int(n, "steps", 0) for n in steps)
    if not steps or any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"steps must be increasing step counts; got {steps}")
    return np.asarray(_accuracies_after(params, tasks, inner_lr, ways=int(ways),
                                        group_queries=int(group_queries), steps=steps,
                                        task_chunk=int(task_chunk)))


@partial(jax.jit, static_argnames=("ways", "group_queries", "task_chunk"))
def _ncm(params, tasks, *, ways, group_queries, task_chunk):
    def one_task(task):
        (support_x, support_y), (query_x, query_y) = task
        prototypes = jax.ops.segment_sum(conv_features(params, support_x), support_y,
                                         ways) / jnp.bincount(support_y, length=ways)[:, None]
        gx, gy = query_groups(query_x, query_y, ways, group_queries)
        features = jax.vmap(lambda x: conv_features(params, x))(gx)      # (G, n, F)
        distances = jnp.sum((features[:, :, None] - prototypes) ** 2, axis=-1)
        return jnp.mean(jnp.argmin(distances, axis=-1) == gy)

    return jax.lax.map(one_task, (tasks.support, tasks.query), batch_size=task_chunk)


def nearest_class_mean_accuracies(params: PyTree, tasks: OmniglotTasks, ways: int,
                                  group_queries: int = 1, task_chunk: int = 50) -> np.ndarray:
    """Accuracy of each task when a query gets the label of the nearest (Euclidean)
    class mean of the support features, with no fine-tuning: (T,) numpy.

    Features come from :func:`conv_features` with the protocol's batches (the support
    set as one batch, queries in groups of ``group_queries`` per class).
    """
    check_int(ways, "ways", 2)
    return np.asarray(_ncm(params, tasks, ways=int(ways), group_queries=int(group_queries),
                           task_chunk=int(task_chunk)))
