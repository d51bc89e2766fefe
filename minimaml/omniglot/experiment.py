"""The Omniglot experiment: its config, a checkpointed training run, the meta-test."""
import dataclasses
import json
import pathlib
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .. import family
from ..checks import check_int, check_number, check_positive
from ..evaluate import mean_ci95
from ..nets import conv_init
from ..progress import ChunkTimer, ProgressBar, chain
from ..runs import versions
from ..train import default_opt_state, optimize_schedule
from ..types import PyTree
from .checkpoint import load_checkpoint, save_checkpoint
from .data import DRAWINGS, Omniglot
from .model import classifier, task_accuracies
from .tasks import sample_tasks, split_characters, task_sampler


@dataclasses.dataclass(frozen=True)
class Config:
    """The experiment's settings; the defaults are the paper's 5-way 1-shot config.

    Checked when made (a ValueError names the first bad field); the code below trusts it.
    """
    ways: int = 5
    shots: int = 1
    queries: int = 1             # query images per class in a training task
    meta_batch: int = 32
    inner_steps: int = 1
    inner_lr: float = 0.4        # α
    eval_inner_steps: int = 3
    meta_lr: float = 1e-3        # β (Adam)
    meta_steps: int = 60_000
    first_order: bool = False
    remat: bool = False
    filters: int = 64
    blocks: int = 4
    train_characters: int = 1200
    split_seed: int = 0
    seed: int = 0
    eval_tasks: int = 600
    eval_queries: int = 15       # per class at meta-test, in groups of ``queries``
    eval_every: int = 0          # meta-steps between test evaluations (0: at the end only)
    steps_per_call: int = 100
    checkpoint_seconds: float = 300.0
    max_train_seconds: float = 0.0   # stop early after this much training (0: no limit)
    algorithm: str = "maml"      # one of minimaml.family.ALGORITHMS
    algorithm_options: tuple = ()    # (name, value) pairs for the algorithm's recipe

    def __post_init__(self):
        for name in ("shots", "queries", "meta_batch", "meta_steps", "filters", "blocks",
                     "train_characters", "eval_tasks", "eval_queries", "steps_per_call"):
            check_int(getattr(self, name), name, 1)
        check_int(self.ways, "ways", 2)
        check_int(self.eval_every, "eval_every", 0)
        check_int(self.inner_steps, "inner_steps", 0)
        check_int(self.eval_inner_steps, "eval_inner_steps", 0)
        check_int(self.seed, "seed", 0, 2**63 - 1)
        check_int(self.split_seed, "split_seed", 0, 2**63 - 1)
        check_number(self.max_train_seconds, "max_train_seconds", 0)
        check_number(self.checkpoint_seconds, "checkpoint_seconds", 0)
        check_positive(self.inner_lr, "inner_lr")
        check_positive(self.meta_lr, "meta_lr")
        if self.eval_queries % self.queries:
            raise ValueError(f"eval_queries must be a multiple of queries={self.queries} "
                             f"(test queries go through the net in training-shaped "
                             f"groups); got {self.eval_queries}")
        if self.shots + max(self.queries, self.eval_queries) > DRAWINGS:
            raise ValueError(f"shots + queries and shots + eval_queries must be at most "
                             f"{DRAWINGS}; got shots={self.shots}, queries={self.queries}, "
                             f"eval_queries={self.eval_queries}")
        family.check_recipe(self.algorithm, self.options())

    def options(self) -> dict[str, Any]:
        """The keyword arguments of the algorithm's recipe (:func:`minimaml.family.plan`)."""
        extra = self.algorithm_options + ((("remat", True),) if self.remat else ())
        return family.recipe_options(self.algorithm, self.inner_steps, self.first_order, extra)

    def validate(self) -> "Config":
        """The checks already ran when the config was made; kept for callers that ask."""
        return self


def paper_config(ways: int = 5, shots: int = 1, **overrides: Any) -> Config:
    """The paper's hyperparameters: 5-way — 1 step at α=0.4, 3 at test, meta-batch 32;
    20-way — 5 steps at α=0.1 (5 at test), meta-batch 16. Adam 1e-3, 60,000 steps."""
    if ways == 20:
        base = dict(inner_steps=5, inner_lr=0.1, eval_inner_steps=5, meta_batch=16)
    else:
        base = dict(inner_steps=1, inner_lr=0.4, eval_inner_steps=3, meta_batch=32)
    return Config(ways=ways, shots=shots, **{**base, **overrides})


# Fields whose change makes a checkpoint belong to a different run.
_RUN_FIELDS = ("ways", "shots", "queries", "meta_batch", "inner_steps", "inner_lr", "meta_lr",
               "first_order", "filters", "blocks", "train_characters", "split_seed", "seed",
               "algorithm", "algorithm_options")


def split_images(data: Omniglot, config: Config) -> tuple[jax.Array, jax.Array]:
    """(train_images, test_images) device arrays (C, 20, 28, 28) for ``config``'s split."""
    train_idx, test_idx = split_characters(len(data.ids), config.train_characters,
                                           config.split_seed)
    return jnp.asarray(data.images[train_idx]), jnp.asarray(data.images[test_idx])


def init_params(config: Config) -> PyTree:
    """The conv net of ``config`` (ways, filters, blocks), initialised from its seed."""
    return conv_init(jax.random.key(config.seed), config.ways, filters=config.filters,
                     blocks=config.blocks)


def evaluate(params: PyTree, test_images: jax.Array, config: Config,
             conv: Callable | None = None, learned: family.Learned | None = None) -> np.ndarray:
    """Meta-test: ``eval_tasks`` fixed fresh tasks, ``eval_inner_steps`` SGD steps at α
    (with ``learned``: fine-tuned its way — learned rates, ANIL's head only — from
    ``learned.params``, and ``params`` is not used).

    Returns per-task accuracy after 0..eval_inner_steps steps, (T, steps+1) numpy.
    The tasks are the same for every call with the same config (seeded apart from
    training), so checkpoints can be compared.
    """
    key = jax.random.fold_in(jax.random.key(config.seed), 10_000)
    tasks = sample_tasks(key, test_images, config.eval_tasks, config.ways, config.shots,
                         config.eval_queries)
    if learned is None:
        return task_accuracies(params, tasks, config.ways, config.inner_lr,
                               config.eval_inner_steps, config.queries, conv)
    finetune = learned.finetune_kwargs(config.eval_inner_steps)
    return task_accuracies(learned.params, tasks, config.ways, finetune.pop("inner_lr"),
                           config.eval_inner_steps, config.queries, conv, **finetune)


class _RunDriver:
    """The ``on_chunk`` of a checkpointed run: it times training, records the losses,
    evaluates every ``eval_every`` steps, checkpoints, and asks to stop when
    ``max_train_seconds`` have passed. ``state`` is what the checkpoint keeps."""

    def __init__(self, config, state, test_images, checkpoint, conv, log, to_learned):
        self.config, self.state, self.test_images = config, state, test_images
        self.checkpoint, self.conv, self.log = checkpoint, conv, log
        self.to_learned = to_learned
        self.last_mark = self.last_save = time.perf_counter()

    def record_eval(self, step, params):
        learned = self.to_learned(params)
        mean, ci = mean_ci95(evaluate(None, self.test_images, self.config, self.conv,
                                      learned)[:, -1])
        entry = {"step": step, "train_seconds": round(self.state["train_seconds"], 2),
                 "accuracy": float(mean), "ci95": float(ci)}
        self.state["evals"].append(entry)
        if self.log:
            self.log(json.dumps(entry))

    def save(self, step, params, opt_state):
        if self.checkpoint is not None:
            save_checkpoint(self.checkpoint, step, params, opt_state, self.state)
            self.last_save = time.perf_counter()

    def __call__(self, step, params, opt_state, losses):
        config, now = self.config, time.perf_counter()
        self.state["train_seconds"] += now - self.last_mark
        self.state["losses"].extend(float(v) for v in losses)
        if config.eval_every and step % config.eval_every == 0 and step < config.meta_steps:
            self.record_eval(step, params)
        time_up = 0 < config.max_train_seconds <= self.state["train_seconds"]
        if (now - self.last_save >= config.checkpoint_seconds or step == config.meta_steps
                or time_up):
            self.save(step, params, opt_state)
        self.last_mark = time.perf_counter()
        return time_up and step < config.meta_steps


def train(config: Config, data: Omniglot, out_dir: str | pathlib.Path | None = None,
          progress: bool = True, conv: Callable | None = None,
          log: Callable[[str], None] | None = None) -> tuple[PyTree, dict[str, Any]]:
    """Meta-train the conv net with ``config.algorithm`` (MAML by default, see
    :mod:`minimaml.family`) on ``data``'s training characters.

    With ``out_dir``, a checkpoint (``checkpoint.npz``) is written every
    ``config.checkpoint_seconds`` and at the end, and a run found there is resumed
    exactly (same tasks, same Adam state). With ``config.eval_every``, the test
    accuracy is measured every so many steps (fixed test tasks) and logged with the
    training wall time so far.

    With ``config.max_train_seconds`` training stops at the first chunk boundary past
    that much training time (a checkpoint is written, the run can be resumed).

    Returns ``(params, history)``: history holds ``steps`` (done), ``losses`` (per step),
    ``train_seconds`` (training only, compile included, evaluation excluded),
    ``evals`` (list of {step, train_seconds, accuracy, ci95}), ``ms_per_step`` (median
    over the chunks of this call after its first) and ``learned`` (the
    :class:`minimaml.family.Learned`: θ and how it is fine-tuned).
    """
    train_images, test_images = split_images(data, config)
    _, loss_fn = classifier(conv)
    the_plan = family.plan(config.algorithm, init_params(config), loss_fn,
                           meta_steps=config.meta_steps, inner_lr=config.inner_lr,
                           **config.options())
    params = the_plan.init
    opt_state = default_opt_state(params)
    state = {"train_seconds": 0.0, "losses": [], "evals": [],
             "config": dataclasses.asdict(config)}
    start_step = 0
    checkpoint = pathlib.Path(out_dir) / "checkpoint.npz" if out_dir is not None else None
    if checkpoint is not None and checkpoint.exists():
        start_step, params, opt_state, state = load_checkpoint(checkpoint, params, opt_state)
        defaults = Config()
        changed = [f for f in _RUN_FIELDS if state["config"].get(f, getattr(defaults, f))
                   != json.loads(json.dumps(getattr(config, f)))]
        if changed:
            raise ValueError(f"{checkpoint} was written with another config "
                             f"({', '.join(changed)} differ); use another --out or the same "
                             f"settings")
        state["config"] = dataclasses.asdict(config)
        if log:
            log(f"resuming from {checkpoint} at step {start_step}")
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)

    driver = _RunDriver(config, state, test_images, checkpoint, conv, log, the_plan.learned)
    timer = ChunkTimer()
    steps_done = start_step
    if start_step < config.meta_steps:
        sampler = task_sampler(train_images, config.meta_batch, config.ways, config.shots,
                               config.queries)
        name = "MAML" if config.algorithm == "maml" else config.algorithm
        with ProgressBar(config.meta_steps, f"{name} {config.ways}-way {config.shots}-shot",
                         initial=start_step, scale=config.meta_batch, unit="task",
                         enabled=progress) as bar:
            params, opt_state, losses = optimize_schedule(
                params, the_plan.schedule, sampler,
                jax.random.fold_in(jax.random.key(config.seed), 1),
                lr=the_plan.meta_lr(config.meta_lr),
                opt_state=opt_state, start_step=start_step,
                steps_per_call=config.steps_per_call,
                on_chunk=chain(timer, driver, bar, timer.restart))
        steps_done = start_step + len(losses)
        if steps_done < config.meta_steps and log:
            log(f"stopped after {state['train_seconds']:.0f} s of training at step "
                f"{steps_done} (max_train_seconds={config.max_train_seconds})")
    state["steps"] = steps_done
    if not state["evals"] or state["evals"][-1]["step"] != steps_done:
        driver.record_eval(steps_done, params)
        driver.save(steps_done, params, opt_state)
    learned = the_plan.learned(params)
    return learned.params, {**state, "ms_per_step": timer.ms_per_step(), "learned": learned}


def run(config: Config, data: Omniglot, out_dir: str | pathlib.Path | None = None,
        progress: bool = True, conv: Callable | None = None,
        log: Callable[[str], None] | None = None) -> tuple[PyTree, dict[str, Any], dict]:
    """Train, meta-test and (with ``out_dir``) write metrics.json and learning_curve.png."""
    from .plots import plot
    params, history = train(config, data, out_dir, progress, conv, log)
    final = history["evals"][-1]
    metrics = {
        "test_accuracy": {"mean": final["accuracy"], "ci95": final["ci95"],
                          "tasks": config.eval_tasks, "steps": config.eval_inner_steps},
        "config": dataclasses.asdict(config),
        "train_seconds": history["train_seconds"],
        "meta_steps": history["steps"],
        "ms_per_step": history["ms_per_step"],
        "evals": history["evals"],
        "versions": versions(),
    }
    if out_dir is not None:
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
        plot(history, config, out / "learning_curve.png")
    return params, metrics, history
