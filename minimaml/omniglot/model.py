"""The classifier and how it is scored: the paper's conv net, its loss, grouped accuracy.

BatchNorm uses each batch's statistics (:func:`minimaml.nets.batch_norm`), so a
prediction depends on the other images it is batched with. Our protocol, used in
training and testing alike: the support set goes through the net as one batch
(N·K images) and the query images in batches shaped like a training query batch
(Q_train images of each class). At test time the ``eval_queries`` queries per class
are split into ``eval_queries / queries`` such groups, each a separate forward pass.
"""
import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..evaluate import finetune_curves
from ..losses import CrossEntropy, cross_entropy_loss
from ..nets import conv_apply
from ..types import ArrayLike, Batch, PyTree
from .tasks import OmniglotTasks, query_groups


@dataclasses.dataclass(frozen=True)
class ConvNet:
    """``apply_fn(params, x)`` of the paper's conv net with a fixed convolution (None:
    the fastest for the backend, see :func:`minimaml.nets.conv_apply`). Equal by value,
    so jitted code keyed on it compiles once per convolution."""
    conv: Callable | None = None

    def __call__(self, params: PyTree, x: ArrayLike) -> jax.Array:
        return conv_apply(params, x, conv=self.conv)


def classifier(conv: Callable | None = None) -> tuple[ConvNet, CrossEntropy]:
    """``(apply_fn, loss_fn)`` of the conv net; ``conv`` as in :func:`conv_apply`."""
    apply_fn = ConvNet(conv)
    return apply_fn, cross_entropy_loss(apply_fn)


@dataclasses.dataclass(frozen=True)
class GroupedAccuracy:
    """``accuracy(params, query)``: the fraction of one task's queries classified right,
    the queries going through the net in groups of ``group_queries`` per class."""
    apply_fn: ConvNet
    ways: int
    group_queries: int = 1

    def __call__(self, params: PyTree, query: Batch) -> jax.Array:
        gx, gy = query_groups(*query, self.ways, self.group_queries)
        logits = jax.vmap(self.apply_fn, in_axes=(None, 0))(params, gx)
        return jnp.mean(jnp.argmax(logits, -1) == gy)


def task_accuracies(params: PyTree, tasks: OmniglotTasks, ways: int, inner_lr: Any,
                    steps: int, group_queries: int = 1, conv: Callable | None = None,
                    task_chunk: int = 50, **finetune: Any) -> np.ndarray:
    """Accuracy of each task after 0..steps fine-tuning steps: (T, steps+1) numpy.

    Fine-tunes θ on each task's support set (one batch) with SGD, and classifies its
    queries in groups of ``group_queries`` per class (each group one forward pass,
    BatchNorm over that group), as in training. ``finetune``: more of
    :func:`minimaml.evaluate.finetune_curves`' settings (``adapt``, ``lr_per_step``,
    ``signed_lr``), e.g. from :meth:`minimaml.family.Learned.finetune_kwargs`.
    """
    apply_fn, loss_fn = classifier(conv)
    return finetune_curves(params, loss_fn, tasks.support, tasks.query, inner_lr, steps,
                           metric_fn=GroupedAccuracy(apply_fn, ways, group_queries),
                           task_chunk=task_chunk, **finetune)
