"""MAML with learn2learn, written the way its examples (``examples/maml_sine.py``,
``examples/vision/maml_omniglot.py``) use it.

``MAML(model, lr=α, first_order=False)``; per task ``learner = maml.clone()``,
``learner.adapt(support_loss)`` for each inner step, then ``query_loss.backward()``;
the accumulated gradients are divided by the meta-batch size and Adam steps.

``import learn2learn`` would import ``learn2learn.vision``, which needs torchvision,
and PyPI's torchvision does not load beside the CPU torch 2.13 used here. MAML needs
only ``learn2learn.algorithms.maml`` (and ``learn2learn.utils``), so
:func:`load_learn2learn_maml` loads that module from the installed package without
running the package's ``__init__``.
"""
import importlib
import importlib.util
import sys
import types

import torch
import torch.nn.functional as F


def load_learn2learn_maml():
    """``learn2learn.algorithms.maml.MAML``, loaded without ``learn2learn/__init__.py``."""
    if "learn2learn" not in sys.modules:
        spec = importlib.util.find_spec("learn2learn")
        if spec is None:
            raise ImportError("learn2learn is not installed (run benchmarks/peers_setup.py)")
        # Empty package objects whose __path__ points at the installed package: submodules
        # import normally, but neither learn2learn/__init__.py nor
        # learn2learn/algorithms/__init__.py (which pulls in the Lightning wrappers) runs.
        for name, path in (("learn2learn", spec.submodule_search_locations[0]),
                           ("learn2learn.algorithms",
                            spec.submodule_search_locations[0] + "/algorithms")):
            package = types.ModuleType(name)
            package.__path__ = [path]
            sys.modules[name] = package
    return importlib.import_module("learn2learn.algorithms.maml").MAML


def accumulate_meta_gradient(maml, batch, inner_steps, loss_fn=F.mse_loss):
    """Add the meta-gradient of ``batch`` to ``maml``'s ``.grad``s; return the mean query loss.

    batch: (support_x, support_y, query_x, query_y), each with a leading task axis.
    """
    num_tasks = batch[0].shape[0]
    meta_loss = 0.0
    for support_x, support_y, query_x, query_y in zip(*batch):
        learner = maml.clone()
        for _ in range(inner_steps):
            learner.adapt(loss_fn(learner(support_x), support_y))
        query_loss = loss_fn(learner(query_x), query_y)
        query_loss.backward()
        meta_loss += query_loss.item()
    for p in maml.parameters():
        p.grad.data.mul_(1.0 / num_tasks)
    return meta_loss / num_tasks


class Learn2LearnMAML:
    """Second-order MAML on ``model`` with ``inner_steps`` SGD steps of size ``inner_lr``."""

    name = "learn2learn"

    def __init__(self, model, *, inner_lr, inner_steps, meta_lr, loss_fn=F.mse_loss):
        MAML = load_learn2learn_maml()
        self.maml = MAML(model, lr=inner_lr, first_order=False)
        self.opt = torch.optim.Adam(self.maml.parameters(), meta_lr)
        self.inner_steps = inner_steps
        self.loss_fn = loss_fn

    def meta_step(self, batch):
        """One meta-iteration (Adam step); returns the meta-loss before the step."""
        self.opt.zero_grad()
        loss = accumulate_meta_gradient(self.maml, batch, self.inner_steps, self.loss_fn)
        self.opt.step()
        return loss

    def meta_gradient(self, batch):
        """The meta-gradient at the current parameters, one tensor per parameter."""
        self.opt.zero_grad()
        accumulate_meta_gradient(self.maml, batch, self.inner_steps, self.loss_fn)
        return [p.grad.detach().clone() for p in self.maml.module.parameters()]
