"""iMAML: the implicit meta-gradient (Rajeswaran, Finn, Kakade & Levine 2019,
"Meta-Learning with Implicit Gradients", NeurIPS; Sections 3-4, Algorithm 2).

The inner problem is regularised towards θ,

    φ*(θ) = argmin_φ  L_support(φ) + (λ/2)‖φ − θ‖²,

and the meta-gradient of L_query(φ*(θ)) follows from the implicit function theorem
without differentiating through the inner loop:

    dL_query(φ*)/dθ = (I + H/λ)⁻¹ ∇L_query(φ*),    H = ∇²L_support(φ*).

The linear system is solved with ``cg_steps`` steps of conjugate gradient
(``jax.scipy.sparse.linalg.cg``) using Hessian-vector products only, so memory does not
grow with the number of inner steps. φ* is approximated by ``inner_steps`` gradient
steps of size α on the regularised loss, starting from θ; the formula is exact only at
the true minimiser (the paper's Theorem 1 bounds the error of an approximate one).
"""
import dataclasses
from functools import partial

import jax
import jax.numpy as jnp

from ..checks import check_int, check_positive
from ..types import Batch, LossFn, PyTree


@dataclasses.dataclass(frozen=True)
class _Settings:
    loss_fn: LossFn
    inner_lr: float
    inner_steps: int
    reg: float
    cg_steps: int
    cg_tol: float


def _solve_inner(settings: _Settings, params: PyTree, support: Batch) -> PyTree:
    """φ after ``inner_steps`` steps on L_support(φ) + (λ/2)‖φ − θ‖², from φ = θ."""
    def step(phi, _):
        grads = jax.grad(settings.loss_fn)(phi, support)
        return jax.tree.map(lambda f, g, p: f - settings.inner_lr * (g + settings.reg * (f - p)),
                            phi, grads, params), None
    return jax.lax.scan(step, params, length=settings.inner_steps)[0]


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _implicit_adapt(settings: _Settings, params: PyTree, support: Batch) -> PyTree:
    return _solve_inner(settings, params, support)


def _implicit_adapt_fwd(settings, params, support):
    phi = _solve_inner(settings, params, support)
    return phi, (phi, support)


def _implicit_adapt_bwd(settings, residuals, phi_cotangent):
    phi, support = residuals

    def hessian_vector(v):
        return jax.jvp(lambda p: jax.grad(settings.loss_fn)(p, support), (phi,), (v,))[1]

    def matvec(v):      # (I + H/λ) v
        return jax.tree.map(lambda a, hv: a + hv / settings.reg, v, hessian_vector(v))

    theta_cotangent, _ = jax.scipy.sparse.linalg.cg(matvec, phi_cotangent,
                                                    maxiter=settings.cg_steps,
                                                    tol=settings.cg_tol)
    return theta_cotangent, jax.tree.map(jnp.zeros_like, support)


_implicit_adapt.defvjp(_implicit_adapt_fwd, _implicit_adapt_bwd)


def implicit_adapt(params: PyTree, loss_fn: LossFn, support: Batch, inner_lr: float,
                   inner_steps: int, reg: float, cg_steps: int = 5,
                   cg_tol: float = 1e-5) -> PyTree:
    """φ*(θ) for one task, whose derivative (under ``jax.grad``) is the implicit one.

    Forward: ``inner_steps`` steps of size ``inner_lr`` on L_support(φ) +
    (reg/2)‖φ − θ‖². Backward: the cotangent v of φ becomes (I + H/reg)⁻¹ v, by
    ``cg_steps`` conjugate-gradient steps (stopping early at relative residual
    ``cg_tol``), H the support loss's Hessian at φ.
    """
    check_positive(inner_lr, "inner_lr")
    check_positive(reg, "reg")
    check_positive(cg_tol, "cg_tol")
    settings = _Settings(loss_fn, inner_lr, check_int(inner_steps, "inner_steps", 1), reg,
                         check_int(cg_steps, "cg_steps", 1), cg_tol)
    return _implicit_adapt(settings, params, support)


@partial(jax.tree_util.register_dataclass, data_fields=[],
         meta_fields=["loss_fn", "inner_lr", "inner_steps", "reg", "cg_steps", "cg_tol"])
@dataclasses.dataclass(frozen=True)
class ImamlObjective:
    """iMAML's meta-objective: mean over tasks of L_query(φ*(θ)), ``objective(θ, s, q)``;
    ``jax.grad`` of it is the implicit meta-gradient (see the module docstring).
    ``reg`` is λ; settings as in :func:`implicit_adapt`."""
    loss_fn: LossFn
    inner_lr: float
    inner_steps: int = 10
    reg: float = 1.0
    cg_steps: int = 5
    cg_tol: float = 1e-5

    def __call__(self, params: PyTree, support: Batch, query: Batch) -> jax.Array:
        def one_task(task_support, task_query):
            phi = implicit_adapt(params, self.loss_fn, task_support, self.inner_lr,
                                 self.inner_steps, self.reg, self.cg_steps, self.cg_tol)
            return self.loss_fn(phi, task_query)
        return jnp.mean(jax.vmap(one_task)(support, query))
