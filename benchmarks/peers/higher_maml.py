"""MAML with higher, written the way its examples (``examples/maml-omniglot.py``) use it.

An ordinary ``torch.optim.SGD(lr=α)`` is the inner optimizer; per task,
``higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False)`` gives a
functional model and a differentiable optimizer, ``diffopt.step(support_loss)`` adapts,
and the query loss is back-propagated through the unrolled steps into ``model``.
"""
import higher
import torch
import torch.nn.functional as F


def accumulate_meta_gradient(model, inner_opt, batch, inner_steps, loss_fn=F.mse_loss):
    """Add the meta-gradient of ``batch`` to ``model``'s ``.grad``s; return the mean query loss.

    batch: (support_x, support_y, query_x, query_y), each with a leading task axis.
    """
    num_tasks = batch[0].shape[0]
    meta_loss = 0.0
    for support_x, support_y, query_x, query_y in zip(*batch):
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
            for _ in range(inner_steps):
                diffopt.step(loss_fn(fmodel(support_x), support_y))
            query_loss = loss_fn(fmodel(query_x), query_y)
            (query_loss / num_tasks).backward()
            meta_loss += query_loss.item()
    return meta_loss / num_tasks


class HigherMAML:
    """Second-order MAML on ``model`` with ``inner_steps`` SGD steps of size ``inner_lr``."""

    name = "higher"

    def __init__(self, model, *, inner_lr, inner_steps, meta_lr, loss_fn=F.mse_loss):
        self.model = model
        self.inner_opt = torch.optim.SGD(model.parameters(), lr=inner_lr)
        self.meta_opt = torch.optim.Adam(model.parameters(), lr=meta_lr)
        self.inner_steps = inner_steps
        self.loss_fn = loss_fn

    def meta_step(self, batch):
        """One meta-iteration (Adam step); returns the meta-loss before the step."""
        self.meta_opt.zero_grad()
        loss = accumulate_meta_gradient(self.model, self.inner_opt, batch, self.inner_steps,
                                        self.loss_fn)
        self.meta_opt.step()
        return loss

    def meta_gradient(self, batch):
        """The meta-gradient at the current parameters, one tensor per parameter."""
        self.meta_opt.zero_grad()
        accumulate_meta_gradient(self.model, self.inner_opt, batch, self.inner_steps, self.loss_fn)
        return [p.grad.detach().clone() for p in self.model.parameters()]
