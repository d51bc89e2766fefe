"""MAML with ``torch.func``, the way its MAML-regression example (functorch's
``examples/maml_regression``) writes it: ``functional_call`` runs the module with a
dict of parameters, ``grad`` takes the inner gradient, ``vmap`` maps the per-task loss
over the meta-batch, and ``.backward()`` on the mean gives the meta-gradient.
"""
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap


def make_meta_loss(model, inner_lr, inner_steps, loss_fn=F.mse_loss):
    """``meta_loss(params, batch)``: mean over tasks of the query loss after adaptation."""

    def task_loss(params, support_x, support_y, query_x, query_y):
        def support_loss(p):
            return loss_fn(functional_call(model, p, (support_x,)), support_y)

        adapted = params
        for _ in range(inner_steps):
            grads = grad(support_loss)(adapted)
            adapted = {k: adapted[k] - inner_lr * grads[k] for k in adapted}
        return loss_fn(functional_call(model, adapted, (query_x,)), query_y)

    def meta_loss(params, batch):
        return vmap(task_loss, in_dims=(None, 0, 0, 0, 0))(params, *batch).mean()

    return meta_loss


class TorchFuncMAML:
    """Second-order MAML on ``model`` with ``inner_steps`` SGD steps of size ``inner_lr``."""

    name = "torch.func"

    def __init__(self, model, *, inner_lr, inner_steps, meta_lr, loss_fn=F.mse_loss):
        self.model = model
        self.meta_loss = make_meta_loss(model, inner_lr, inner_steps, loss_fn)
        self.opt = torch.optim.Adam(model.parameters(), lr=meta_lr)

    def meta_step(self, batch):
        """One meta-iteration (Adam step); returns the meta-loss before the step."""
        self.opt.zero_grad()
        loss = self.meta_loss(dict(self.model.named_parameters()), batch)
        loss.backward()
        self.opt.step()
        return loss.item()

    def meta_gradient(self, batch):
        """The meta-gradient at the current parameters, one tensor per parameter."""
        self.opt.zero_grad()
        self.meta_loss(dict(self.model.named_parameters()), batch).backward()
        return [p.grad.detach().clone() for p in self.model.parameters()]
