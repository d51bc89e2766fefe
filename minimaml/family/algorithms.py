"""The family's recipes: each algorithm as a setting of the one inner loop, and one
``meta_train`` for all of them.

A recipe returns a :class:`Plan`: the pytree Adam trains (θ, or θ with its learned
rates), a schedule of objectives (one phase for most; MAML++ switches from first to
second order and anneals its step weights), and a :class:`Learned` maker that says how
the result is fine-tuned at meta-test. ``meta_train(name, ...)`` runs any of them with
:func:`minimaml.train.optimize_schedule`.
"""
import dataclasses
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..checks import check_adapt, check_choice, check_int, check_number, check_positive
from ..evaluate import finetune_curves
from ..maml import Trajectory, _inner_loop
from ..train import MamlObjective, optimize_schedule
from ..types import ArrayLike, Batch, LossFn, Mask, Objective, PyTree, SampleTasks
from .imaml import ImamlObjective
from .objectives import InnerLoopObjective, LearnedRates, ReptileObjective

ALGORITHMS = ("maml", "fomaml", "metasgd", "anil", "mamlpp", "reptile", "imaml")


@dataclasses.dataclass(frozen=True)
class Learned:
    """A meta-learned initialisation and how to fine-tune from it.

    params: θ. inner_lr: the fine-tuning rate — a number, or learned rates (a pytree:
    per entry for Meta-SGD, per tensor and step for MAML++, then ``lr_per_step``).
    adapt: the parameters that adapt (one bool per leaf of θ), None for all.
    learned_lr: the rates were meta-learned (they may have changed sign).
    """
    params: PyTree
    inner_lr: Any
    adapt: tuple[bool, ...] | None = None
    lr_per_step: bool = False
    learned_lr: bool = False

    def rates(self, steps: int) -> Any:
        """α for a fine-tuning budget of ``steps``: per-step rates are cut to ``steps``
        rows, or extended by repeating the last learned step's rate."""
        if not self.lr_per_step:
            return self.inner_lr
        def fit(rate):
            rows = jnp.arange(steps).clip(max=rate.shape[0] - 1)
            return rate[rows]
        return jax.tree.map(fit, self.inner_lr)

    def finetune_kwargs(self, steps: int) -> dict[str, Any]:
        """``inner_lr``, ``adapt``, ``lr_per_step`` and ``signed_lr`` for
        :func:`minimaml.evaluate.finetune_curves` with a budget of ``steps``."""
        adapt = None if self.adapt is None else jax.tree.unflatten(
            jax.tree.structure(self.params), self.adapt)
        return dict(inner_lr=self.rates(steps), adapt=adapt, lr_per_step=self.lr_per_step,
                    signed_lr=self.learned_lr)

    def finetune_curves(self, loss_fn: LossFn, support: Batch, query: Batch, steps: int,
                        **kwargs: Any) -> np.ndarray:
        """:func:`minimaml.evaluate.finetune_curves` with this learner's rates and mask."""
        return finetune_curves(self.params, loss_fn, support, query, steps=steps,
                               **self.finetune_kwargs(steps), **kwargs)

    def trajectory(self, loss_fn: LossFn, support: Batch, steps: int) -> Trajectory:
        """The :class:`minimaml.maml.Trajectory` of fine-tuning θ on one task's support
        set for ``steps`` steps, this learner's way (for plots and widgets)."""
        check_int(steps, "steps", 0)
        return _inner_loop(self.params, loss_fn, support, self.rates(steps), steps,
                           trajectory=True, adapt=self.adapt, lr_per_step=self.lr_per_step)[1]


@dataclasses.dataclass(frozen=True)
class Plan:
    """How an algorithm meta-trains: ``init`` (the pytree Adam trains), ``schedule``
    (``(until_step, objective)`` phases) and ``learned(trained) -> Learned``."""
    name: str
    init: PyTree
    schedule: tuple[tuple[int, Objective], ...]
    learned: Callable[[PyTree], Learned]
    rate_meta_lr: float | None = None

    def meta_lr(self, meta_lr: float) -> float | PyTree:
        """Adam's learning rate for ``init``: ``meta_lr`` for everything, or, with
        ``rate_meta_lr`` set, a pytree like ``init`` giving the learned inner rates
        that rate instead (``lr`` of :func:`minimaml.train.optimize`)."""
        if self.rate_meta_lr is None:
            return meta_lr
        return LearnedRates(jax.tree.map(lambda _: meta_lr, self.init.params),
                            jax.tree.map(lambda _: self.rate_meta_lr, self.init.inner_lr))


def _fixed(name, params, objective, meta_steps, inner_lr, adapt=None):
    return Plan(name, params, ((meta_steps, objective),),
                lambda theta: Learned(theta, inner_lr, adapt))


def maml(params: PyTree, loss_fn: LossFn, *, meta_steps: int, inner_lr: float,
         inner_steps: int = 1, first_order: bool = False, remat: bool = False) -> Plan:
    """MAML (Finn, Abbeel & Levine 2017, "Model-Agnostic Meta-Learning for Fast Adaptation
    of Deep Networks", ICML; Algorithm 2, Eq. 1): the meta-gradient through the inner
    SGD steps, second order. Exactly :func:`minimaml.train.meta_train`'s objective."""
    objective = MamlObjective(loss_fn, float(inner_lr), inner_steps, first_order, remat)
    return _fixed("fomaml" if first_order else "maml", params, objective, meta_steps, inner_lr)


def fomaml(params: PyTree, loss_fn: LossFn, *, meta_steps: int, inner_lr: float,
           inner_steps: int = 1) -> Plan:
    """First-order MAML (Finn et al. 2017, Section 5.2): the inner gradients are
    constants, dθ'/dθ = I, so the meta-gradient is ∇L_query(θ') (no Hessian term)."""
    return maml(params, loss_fn, meta_steps=meta_steps, inner_lr=inner_lr,
                inner_steps=inner_steps, first_order=True)


def last_layer(params: PyTree) -> PyTree:
    """ANIL's default mask: only the last entry of a list/tuple of layers adapts."""
    if not isinstance(params, (list, tuple)) or len(params) < 2:
        raise ValueError("head: the default (the last layer) needs params as a list or tuple "
                         "of at least two layers; pass head= a mask or a predicate "
                         "(path, leaf) -> bool for other models")
    return type(params)([False] * (len(params) - 1) + [True])


def anil(params: PyTree, loss_fn: LossFn, *, meta_steps: int, inner_lr: float,
         inner_steps: int = 1, head: Mask = None, first_order: bool = False,
         eval_inner_lr: float | None = None) -> Plan:
    """ANIL, "almost no inner loop" (Raghu, Raghu, Bengio & Vinyals 2020, "Rapid Learning
    or Feature Reuse?", ICLR; Section 4): only the head adapts in the inner loop, the
    body is shared; the meta-gradient still trains everything. ``head``: the mask of
    the adapting parameters (default :func:`last_layer`). The body is never
    differentiated in the inner loop. Fine-tuned at meta-test with ``eval_inner_lr``
    (default ``inner_lr``): the head's loss is quadratic for MSE, so SGD on it diverges
    on a task whose head Hessian has an eigenvalue above 2/α, and meta-training can
    learn features large enough for that on some tasks (chapter 8 measures it)."""
    adapt = check_adapt(params, last_layer(params) if head is None else head)
    objective = MamlObjective(loss_fn, float(inner_lr), inner_steps, first_order, False, adapt)
    return _fixed("anil", params, objective, meta_steps,
                  inner_lr if eval_inner_lr is None else eval_inner_lr, adapt)


def metasgd(params: PyTree, loss_fn: LossFn, *, meta_steps: int, inner_lr: float,
            inner_steps: int = 1, first_order: bool = False,
            rate_meta_lr: float | None = None) -> Plan:
    """Meta-SGD (Li, Zhou, Chen & Li 2017, "Meta-SGD: Learning to Learn Quickly for
    Few-Shot Learning"; Eq. 3-4): θ' = θ − α ∘ ∇L_support(θ) with α a vector as large
    as θ, meta-learned with θ by the same optimizer. α starts at ``inner_lr``
    everywhere (the paper draws it from U[0.005, 0.1]); a learned rate may change sign.
    ``rate_meta_lr``: Adam's learning rate for α (default: the same as θ's, the paper's).
    The rates are learned for ``inner_steps`` steps; nothing makes them good for more."""
    rates = jax.tree.map(lambda p: jnp.full(jnp.shape(p), inner_lr, jnp.result_type(p)), params)
    objective = InnerLoopObjective(loss_fn, inner_steps, first_order=first_order)
    return Plan("metasgd", LearnedRates(params, rates), ((meta_steps, objective),),
                lambda trained: Learned(trained.params, trained.inner_lr, learned_lr=True),
                _check_rate_meta_lr(rate_meta_lr))


def _check_rate_meta_lr(rate_meta_lr):
    return None if rate_meta_lr is None else float(check_positive(rate_meta_lr, "rate_meta_lr"))


def multi_step_weights(inner_steps: int, progress: float, floor: float = 0.03) -> np.ndarray:
    """MAML++'s multi-step loss weights at ``progress`` ∈ [0, 1] of the annealing: equal
    (1/n each) at 0; the weights of steps 1..n−1 fall linearly to ``floor``/n at 1,
    and the last step takes the rest (Antoniou et al. 2019, Section 4, "MSL")."""
    n = inner_steps
    early = np.full(n - 1, max(1.0 / n * (1 - progress), floor / n))
    return np.append(early, 1.0 - early.sum()).astype(np.float32)


def mamlpp(params: PyTree, loss_fn: LossFn, *, meta_steps: int, inner_lr: float,
           inner_steps: int = 5, first_order_steps: int | None = None,
           msl_steps: int | None = None, msl_phases: int = 10,
           rate_meta_lr: float | None = None) -> Plan:
    """MAML++ (Antoniou, Edwards & Storkey 2019, "How to train your MAML", ICLR;
    Section 4), three of its changes:

    - LSLR: learned rates per tensor and per inner step, starting at ``inner_lr``;
    - MSL: the query loss after every inner step, weighted; the weights start equal and
      move to the last step over ``msl_steps`` meta-steps (in ``msl_phases`` steps of a
      staircase; default: the first 10% of training, our choice);
    - DA, derivative-order annealing: first order for the first ``first_order_steps``
      meta-steps, then second order (default: the first third, the paper's 50 of 150
      epochs).

    ``rate_meta_lr``: Adam's learning rate for the rates (default: θ's). Adam moves
    every parameter by about its learning rate per step whatever the gradient's size,
    so with β = 1e-3 a rate started at α = 0.01 changes by ~10% a step, ten times
    more than in the paper's setting (α = 0.1, the official code's
    ``init_inner_loop_learning_rate``); ``rate_meta_lr = β · α / 0.1`` restores it.

    Not included: per-step BatchNorm statistics and weights (BNRS/BNWB) and the cosine
    schedule of the meta learning rate. The schedule's phases compile two programs
    (first and second order); the weights are traced, so their changes do not recompile.
    """
    first_order_steps = meta_steps // 3 if first_order_steps is None else first_order_steps
    msl_steps = meta_steps // 10 if msl_steps is None else msl_steps
    check_int(first_order_steps, "first_order_steps", 0)
    check_int(msl_steps, "msl_steps", 0)
    check_int(msl_phases, "msl_phases", 1)
    inner_steps = check_int(inner_steps, "inner_steps", 1)
    edges = {meta_steps, first_order_steps} | {msl_steps * i // msl_phases
                                               for i in range(1, msl_phases + 1)}
    edges = sorted(e for e in edges if 0 < e <= meta_steps)
    schedule, start = [], 0
    for end in edges:
        progress = 1.0 if msl_steps == 0 else min(1.0, start / msl_steps)
        weights = jnp.asarray(multi_step_weights(inner_steps, progress))
        schedule.append((end, InnerLoopObjective(loss_fn, inner_steps, query_weights=weights,
                                                 first_order=start < first_order_steps,
                                                 lr_per_step=True)))
        start = end
    rates = jax.tree.map(lambda p: jnp.full((inner_steps,), inner_lr, jnp.result_type(p)),
                         params)
    return Plan("mamlpp", LearnedRates(params, rates), tuple(schedule),
                lambda trained: Learned(trained.params, trained.inner_lr, lr_per_step=True,
                                        learned_lr=True),
                _check_rate_meta_lr(rate_meta_lr))


def reptile(params: PyTree, loss_fn: LossFn, *, meta_steps: int, inner_lr: float,
            inner_steps: int = 5, eval_inner_lr: float | None = None) -> Plan:
    """Reptile (Nichol, Achiam & Schulman 2018; see :class:`ReptileObjective`): move θ
    towards the weights each task reaches after ``inner_steps`` SGD steps. Fine-tuned at
    meta-test with ``eval_inner_lr`` (default ``inner_lr``)."""
    return _fixed("reptile", params, ReptileObjective(loss_fn, float(inner_lr), inner_steps),
                  meta_steps, inner_lr if eval_inner_lr is None else eval_inner_lr)


def imaml(params: PyTree, loss_fn: LossFn, *, meta_steps: int, inner_lr: float,
          inner_steps: int = 10, reg: float = 1.0, cg_steps: int = 5,
          eval_inner_lr: float | None = None) -> Plan:
    """iMAML (Rajeswaran et al. 2019; see :mod:`minimaml.family.imaml`): the implicit
    meta-gradient (I + H/λ)⁻¹ ∇L_query(φ*) by conjugate gradient, λ = ``reg``.
    Fine-tuned at meta-test with plain SGD at ``eval_inner_lr`` (default ``inner_lr``)."""
    check_positive(reg, "reg")
    objective = ImamlObjective(loss_fn, float(inner_lr), check_int(inner_steps, "inner_steps", 1),
                               float(reg), check_int(cg_steps, "cg_steps", 1))
    return _fixed("imaml", params, objective, meta_steps,
                  inner_lr if eval_inner_lr is None else eval_inner_lr)


OWN_INNER_STEPS = ("mamlpp", "reptile", "imaml")
"""The algorithms whose default number of inner steps is their recipe's, not a
benchmark's (MAML++'s multi-step loss, Reptile's and iMAML's inner solves need several)."""

RECIPES = {"maml": maml, "fomaml": fomaml, "metasgd": metasgd, "anil": anil,
           "mamlpp": mamlpp, "reptile": reptile, "imaml": imaml}


def parse_option(text: str) -> tuple[str, int | float | str]:
    """A command line's ``NAME=VALUE`` as ``(name, value)``, the value an int, a float or
    else a string (the CLIs' ``--algorithm-option``)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(f"expected NAME=VALUE, got {text!r}")
    for kind in (int, float):
        try:
            return name, kind(value)
        except ValueError:
            pass
    return name, value


def default_inner_steps(algorithm: str) -> int:
    """The number of inner steps ``algorithm``'s recipe takes by default."""
    check_choice(algorithm, "algorithm", ALGORITHMS)
    return inspect.signature(RECIPES[algorithm]).parameters["inner_steps"].default


def with_recipe_steps(fields: dict[str, Any], default_algorithm: str = "maml") -> dict[str, Any]:
    """A command line's config ``fields`` with ``inner_steps`` set to the recipe's default
    when the chosen algorithm brings its own (:data:`OWN_INNER_STEPS`) and none was given."""
    algorithm = fields.get("algorithm", default_algorithm)
    if "inner_steps" not in fields and algorithm in OWN_INNER_STEPS:
        fields = {**fields, "inner_steps": default_inner_steps(algorithm)}
    return fields


def recipe_options(algorithm: str, inner_steps: int | None, first_order: bool = False,
                   extra: Any = ()) -> dict[str, Any]:
    """A recipe's keyword arguments from a benchmark's settings: ``inner_steps`` (None:
    the recipe's default), ``first_order`` (for the recipes that take it) and ``extra``
    ``(name, value)`` pairs. ValueError when ``first_order`` does not apply."""
    check_choice(algorithm, "algorithm", ALGORITHMS)
    options = {} if inner_steps is None else {"inner_steps": inner_steps}
    if first_order:
        if "first_order" not in inspect.signature(RECIPES[algorithm]).parameters:
            raise ValueError(f"first_order applies to maml, metasgd and anil, not to "
                             f"algorithm={algorithm!r}")
        options["first_order"] = True
    return {**options, **dict(extra)}


def check_recipe(algorithm: str, options: dict[str, Any]) -> None:
    """ValueError unless ``algorithm`` is known and takes every one of ``options``."""
    check_choice(algorithm, "algorithm", ALGORITHMS)
    allowed = [name for name, p in inspect.signature(RECIPES[algorithm]).parameters.items()
               if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in
               ("meta_steps", "inner_lr")]
    for name in options:
        if name not in allowed:
            raise ValueError(f"{algorithm} has no option {name!r}; it takes "
                             f"{', '.join(allowed)}")
    for name, value in options.items():
        if name in _NUMBER_OPTIONS and value is not None:
            _NUMBER_OPTIONS[name](value, name)
    if algorithm in ("mamlpp", "imaml") and "inner_steps" in options:
        check_int(options["inner_steps"], "inner_steps", 1)     # a loss per step, a solve


# The recipes' number options, checked when a config is made (before any long work).
_NUMBER_OPTIONS = {
    "inner_steps": lambda v, n: check_int(v, n, 0), "cg_steps": lambda v, n: check_int(v, n, 1),
    "first_order_steps": lambda v, n: check_int(v, n, 0),
    "msl_steps": lambda v, n: check_int(v, n, 0), "msl_phases": lambda v, n: check_int(v, n, 1),
    "reg": check_positive, "eval_inner_lr": check_positive, "rate_meta_lr": check_positive}


def plan(algorithm: str, params: PyTree, loss_fn: LossFn, *, meta_steps: int, inner_lr: float,
         **options: Any) -> Plan:
    """The :class:`Plan` of ``algorithm`` (one of :data:`ALGORITHMS`); ``options`` are
    that recipe's own keyword arguments (e.g. ``inner_steps``, ``reg``, ``head``)."""
    check_recipe(algorithm, options)
    check_int(meta_steps, "meta_steps", 1)
    check_positive(inner_lr, "inner_lr")
    return RECIPES[algorithm](params, loss_fn, meta_steps=meta_steps, inner_lr=inner_lr,
                              **options)


def meta_train(algorithm: str, params: PyTree, loss_fn: LossFn, sample_tasks: SampleTasks,
               key: jax.Array, *, meta_steps: int, inner_lr: float, meta_lr: float = 1e-3,
               options: dict[str, Any] | None = None,
               **optimize_kwargs: Any) -> tuple[Learned, PyTree, np.ndarray]:
    """Meta-train ``params`` with ``algorithm`` and Adam(``meta_lr``).

    ``options``: the recipe's own settings (see :func:`plan`); ``optimize_kwargs``
    (``steps_per_call``, ``on_chunk``, ``opt_state``, ``start_step``) go to
    :func:`minimaml.train.optimize_schedule`. Returns ``(learned, opt_state, losses)``;
    ``learned.finetune_curves(...)`` meta-tests it.
    """
    check_positive(meta_lr, "meta_lr")
    the_plan = plan(algorithm, params, loss_fn, meta_steps=meta_steps, inner_lr=inner_lr,
                    **(options or {}))
    trained, opt_state, losses = optimize_schedule(the_plan.init, the_plan.schedule,
                                                   sample_tasks, key,
                                                   lr=the_plan.meta_lr(meta_lr),
                                                   **optimize_kwargs)
    return the_plan.learned(trained), opt_state, losses
