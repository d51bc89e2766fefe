"""minimaml: Model-Agnostic Meta-Learning in a few pure-JAX files.

- :mod:`minimaml.nets`     networks as ``init``/``apply`` pairs
- :mod:`minimaml.losses`   losses as ``loss_fn(params, batch)``
- :mod:`minimaml.maml`     the inner loop and the MAML objective (Eq. 1 of the paper)
- :mod:`minimaml.train`    meta-training with optax, the pretrained baseline
- :mod:`minimaml.evaluate` the meta-test protocol
- :mod:`minimaml.sinusoid` the paper's sinusoid benchmark
"""
from .evaluate import finetune_curves, mean_ci95
from .losses import mse_loss
from .maml import Trajectory, inner_loop, maml_objective, query_loss, sgd_step, task_loss
from .nets import mlp_apply, mlp_init
from .train import TrainingDiverged, meta_train, optimize, pretrain

__version__ = "0.1.0"
