"""minimaml: Model-Agnostic Meta-Learning in a few pure-JAX files.

The core (needs only jax, optax and numpy):

- :mod:`minimaml.nets`     networks as ``init``/``apply`` pairs
- :mod:`minimaml.losses`   losses as ``loss_fn(params, batch)``
- :mod:`minimaml.maml`     the inner loop and the MAML objective (Eq. 1 of the paper)
- :mod:`minimaml.train`    meta-training with optax, the pretrained baseline
- :mod:`minimaml.evaluate` the meta-test protocol
- :mod:`minimaml.devices`  more devices: meta-batches split over a mesh, many processes
- :mod:`minimaml.tasks`    what task batches and samplers share
- :mod:`minimaml.family`   MAML's relatives on the same inner loop: FOMAML, Meta-SGD,
  ANIL, MAML++, Reptile, iMAML

The benchmarks, each a package (data → tasks → experiment → command line):
:mod:`minimaml.sinusoid`, :mod:`minimaml.omniglot` (the ``omniglot`` extra); the
chapters' widgets: :mod:`minimaml.widgets` (the ``notebooks`` extra).
"""
__version__ = "0.2.0"

from .evaluate import finetune_curves, mean_ci95
from .losses import cross_entropy_loss, mse_loss
from .maml import Trajectory, inner_loop, maml_objective, query_loss, sgd_step, task_loss
from .nets import conv_apply, conv_init, mlp_apply, mlp_init
from .tasks import SupportQuery, TaskSampler, task_sampler
from .train import TrainingDiverged, default_opt_state, meta_train, optimize, pretrain
from .types import ArrayLike, Batch, LossFn, PyTree

__all__ = ["ArrayLike", "Batch", "LossFn", "PyTree", "SupportQuery", "TaskSampler",
           "Trajectory", "TrainingDiverged", "conv_apply", "conv_init", "cross_entropy_loss",
           "default_opt_state", "finetune_curves", "inner_loop", "maml_objective",
           "mean_ci95", "meta_train", "mlp_apply", "mlp_init", "mse_loss", "optimize",
           "pretrain", "query_loss", "sgd_step", "task_loss", "task_sampler"]
