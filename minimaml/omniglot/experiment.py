"""The Omniglot experiment: its config, a checkpointed training run, the meta-test
(:mod:`.metatest`)."""
import contextlib
import dataclasses
import json
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp

from .. import family
from ..checks import ArgumentError, check_int, check_number, check_positive
from ..devices import Devices, device_record, process_share
from ..evaluate import mean_ci95
from ..nets import conv_init
from ..progress import ChunkTimer, ProgressBar, chain
from ..runs import Interrupted, RunFolder, StopOnInterrupt, check_memory, versions
from ..train import default_opt_state, optimize_schedule
from ..types import PyTree
from .checkpoint import check_same_run, load_checkpoint, save_checkpoint
from .data import DRAWINGS, Omniglot, content_sha256
from .metatest import _evaluate, evaluate  # noqa: F401  (evaluate: part of this module's API)
from .model import classifier
from .sizes import check_data, estimate_memory
from .tasks import split_characters, task_sampler

MAX_STEPS = 2**31 - 1     # training steps are counted in 32-bit integers on the device


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
    max_train_cpu_seconds: float = 0.0   # ... or this much CPU time in training (0: no limit)
    algorithm: str = "maml"      # one of minimaml.family.ALGORITHMS
    algorithm_options: tuple = ()    # (name, value) pairs for the algorithm's recipe

    def __post_init__(self):
        for name in ("queries", "meta_batch", "filters", "blocks",
                     "train_characters", "eval_tasks", "eval_queries", "steps_per_call"):
            check_int(getattr(self, name), name, 1)
        check_int(self.shots, "shots", 1, DRAWINGS - 1)
        check_int(self.meta_steps, "meta_steps", 1, MAX_STEPS)
        check_int(self.ways, "ways", 2)
        check_int(self.eval_every, "eval_every", 0)
        check_int(self.inner_steps, "inner_steps", 0)
        check_int(self.eval_inner_steps, "eval_inner_steps", 0)
        check_int(self.seed, "seed", 0, 2**63 - 1)
        check_int(self.split_seed, "split_seed", 0, 2**63 - 1)
        check_number(self.max_train_seconds, "max_train_seconds", 0)
        check_number(self.max_train_cpu_seconds, "max_train_cpu_seconds", 0)
        check_number(self.checkpoint_seconds, "checkpoint_seconds", 0)
        check_positive(self.inner_lr, "inner_lr")
        check_positive(self.meta_lr, "meta_lr")
        if self.eval_queries % self.queries:
            raise ArgumentError("eval_queries", f"a multiple of queries ({self.queries}): test "
                                f"queries go through the net in training-shaped groups",
                                self.eval_queries)
        for name in ("queries", "eval_queries"):
            if getattr(self, name) > DRAWINGS - self.shots:
                raise ArgumentError(name, f"at most {DRAWINGS - self.shots} (each character "
                                    f"has {DRAWINGS} drawings, shots={self.shots} of them in "
                                    f"the support set)", getattr(self, name))
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


def split_images(data: Omniglot, config: Config) -> tuple[jax.Array, jax.Array]:
    """(train_images, test_images) device arrays (C, 20, 28, 28) for ``config``'s split."""
    check_data(config, data)
    train_idx, test_idx = split_characters(len(data.ids), config.train_characters,
                                           config.split_seed)
    return jnp.asarray(data.images[train_idx]), jnp.asarray(data.images[test_idx])


def init_params(config: Config) -> PyTree:
    """The conv net of ``config`` (ways, filters, blocks), initialised from its seed."""
    return conv_init(jax.random.key(config.seed), config.ways, filters=config.filters,
                     blocks=config.blocks)


class _RunDriver:
    """The ``on_chunk`` of a checkpointed run: it times training, records the losses,
    evaluates every ``eval_every`` steps, checkpoints, and asks to stop when
    ``max_train_seconds`` have passed or ``stop`` (Ctrl-C) asks. ``state`` is what the
    checkpoint keeps."""

    def __init__(self, config, state, test_images, checkpoint, conv, log, stop, devices,
                 to_learned=None):
        self.config, self.state, self.test_images = config, state, test_images
        self.checkpoint, self.conv, self.log, self.stop = checkpoint, conv, log, stop
        self.devices, self.to_learned = devices, to_learned
        self.last_mark = self.last_save = time.perf_counter()
        self.last_cpu = time.process_time()

    def record_eval(self, step, params):
        learned = None if self.to_learned is None else self.to_learned(params)
        accuracies, diverged = _evaluate(params, self.test_images, self.config, self.conv,
                                         devices=self.devices, learned=learned)
        mean, ci = mean_ci95(accuracies[:, -1])
        entry = {"step": step, "train_seconds": round(self.state["train_seconds"], 2),
                 "accuracy": float(mean), "ci95": float(ci)}
        if diverged:
            entry["diverged_tasks"] = diverged
        self.state["evals"].append(entry)
        if self.log:
            self.log(json.dumps(entry))

    def save(self, step, params, opt_state):
        if self.checkpoint is not None:
            save_checkpoint(self.checkpoint, step, params, opt_state, self.state)
            self.last_save = time.perf_counter()

    def __call__(self, step, params, opt_state, losses):
        config, now, cpu_now = self.config, time.perf_counter(), time.process_time()
        self.state["train_seconds"] += now - self.last_mark
        self.state["train_cpu_seconds"] = (self.state.get("train_cpu_seconds", 0.0)
                                           + cpu_now - self.last_cpu)
        self.state["losses"].extend(float(v) for v in losses)
        interrupted = self.stop is not None and self.stop.requested
        if (config.eval_every and step % config.eval_every == 0 and step < config.meta_steps
                and not interrupted):
            self.record_eval(step, params)
        time_up = _budget_spent(config, self.state)
        if (now - self.last_save >= config.checkpoint_seconds or step == config.meta_steps
                or time_up or interrupted):
            self.save(step, params, opt_state)
        self.last_mark, self.last_cpu = time.perf_counter(), time.process_time()
        return (time_up or interrupted) and step < config.meta_steps


def _budget_spent(config: Config, state: dict[str, Any]) -> bool:
    """Has training used its ``max_train_seconds`` or ``max_train_cpu_seconds``? (A run
    resumed with its budget spent goes straight to the meta-test.)"""
    return (0 < config.max_train_seconds <= state["train_seconds"]
            or 0 < config.max_train_cpu_seconds <= state.get("train_cpu_seconds", 0.0))


def data_record(data: Omniglot, source: Any = None) -> dict[str, Any]:
    """What a checkpoint and metrics.json record of the data: its content's sha256, its
    number of characters and (when known) where it was read from."""
    record = {"sha256": content_sha256(data), "characters": len(data.ids)}
    if source is not None:
        record["source"] = str(source)
    return record


def train(config: Config, data: Omniglot, out_dir: str | os.PathLike | None = None,
          progress: bool = True, conv: Callable | None = None,
          log: Callable[[str], None] | None = None,
          memory_limit_gb: float | None = None,
          devices: Devices = None) -> tuple[PyTree, dict[str, Any]]:
    """Meta-train the conv net with ``config.algorithm`` (MAML by default, see
    :mod:`minimaml.family`) on ``data``'s training characters.

    With ``out_dir``, a checkpoint (``checkpoint.npz``) is written every
    ``config.checkpoint_seconds`` and at the end, and a run found there is resumed
    exactly (same tasks, same Adam state) — only if it was written with the same
    config (but for :data:`.checkpoint.RESUMABLE_CHANGES`) and the same data, else
    ValueError. The folder is locked while training (:class:`minimaml.runs.RunFolder`),
    and Ctrl-C stops at the end of the chunk, writes a checkpoint and raises
    :class:`minimaml.runs.Interrupted` naming it. With ``config.eval_every``, the test
    accuracy is measured every so many steps (fixed test tasks) and logged with the
    training wall time so far.

    Before the work, the data must fit the config (:func:`check_data`) and the largest
    arrays ``memory_limit_gb`` (default: the device's memory; :func:`estimate_memory`).

    ``devices`` splits the tasks of training and the meta-test across devices
    (:func:`minimaml.train.optimize`); with several processes, each draws its share.

    With ``config.max_train_seconds`` (``max_train_cpu_seconds``) training stops at the
    first chunk boundary past that much training time (CPU time of all the process's
    threads) (a checkpoint is written, the run can be resumed).

    Returns ``(params, history)``: history holds ``steps`` (done), ``losses`` (per step),
    ``train_seconds`` and ``train_cpu_seconds`` (training only, compile included,
    evaluation excluded), ``evals`` (list of {step, train_seconds, accuracy, ci95}),
    ``ms_per_step`` (median over the chunks of this call after its first) and
    ``learned`` (the :class:`minimaml.family.Learned`: θ and how it is fine-tuned).
    """
    check_data(config, data)
    check_memory(estimate_memory(config, len(data.ids)), memory_limit_gb)
    with contextlib.ExitStack() as stack:
        checkpoint = stop = None
        if out_dir is not None:
            folder = stack.enter_context(RunFolder(out_dir))
            stop = stack.enter_context(StopOnInterrupt(log))
            checkpoint = folder.path / "checkpoint.npz"
        return _train(config, data, checkpoint, stop, progress, conv, log, devices)


def _train(config, data, checkpoint, stop, progress, conv, log, devices=None):
    train_images, test_images = split_images(data, config)
    _, loss_fn = classifier(conv)
    the_plan = family.plan(config.algorithm, init_params(config), loss_fn,
                           meta_steps=config.meta_steps, inner_lr=config.inner_lr,
                           **config.options())
    params = the_plan.init
    opt_state = default_opt_state(params)
    state = {"train_seconds": 0.0, "losses": [], "evals": [],
             "config": dataclasses.asdict(config), "data": data_record(data)}
    start_step = 0
    if checkpoint is not None and checkpoint.exists():
        start_step, params, opt_state, saved = load_checkpoint(checkpoint, params, opt_state)
        warning = check_same_run(checkpoint, saved, state["config"], state["data"])
        if warning and log:
            log(f"warning: {warning}")
        state = {**saved, "config": state["config"], "data": state["data"]}
        if log:
            log(f"resuming from {checkpoint} at step {start_step}")

    driver = _RunDriver(config, state, test_images, checkpoint, conv, log, stop, devices,
                        the_plan.learned)
    timer = ChunkTimer()
    steps_done = start_step
    if start_step < config.meta_steps and not _budget_spent(config, state):
        sampler = task_sampler(train_images, process_share(config.meta_batch), config.ways,
                               config.shots, config.queries)
        name = "MAML" if config.algorithm == "maml" else config.algorithm
        with ProgressBar(config.meta_steps, f"{name} {config.ways}-way {config.shots}-shot",
                         initial=start_step, scale=config.meta_batch, unit="task",
                         enabled=progress) as bar:
            params, opt_state, losses = optimize_schedule(
                params, the_plan.schedule, sampler,
                jax.random.fold_in(jax.random.key(config.seed), 1),
                lr=the_plan.meta_lr(config.meta_lr), opt_state=opt_state,
                start_step=start_step, steps_per_call=config.steps_per_call,
                on_chunk=chain(timer, driver, bar, timer.restart), devices=devices)
        steps_done = start_step + len(losses)
        if stop is not None and stop.requested and steps_done < config.meta_steps:
            raise Interrupted(f"stopped at step {steps_done} of {config.meta_steps}; "
                              f"checkpoint saved in {checkpoint} (run the same command "
                              f"again to resume)")
        if steps_done < config.meta_steps and log:
            log(f"stopped after {state['train_seconds']:.0f} s of training at step "
                f"{steps_done} ({state.get('train_cpu_seconds', 0):.0f} CPU-seconds; "
                f"max_train_seconds={config.max_train_seconds}, "
                f"max_train_cpu_seconds={config.max_train_cpu_seconds})")
    state["steps"] = steps_done
    if not state["evals"] or state["evals"][-1]["step"] != steps_done:
        driver.record_eval(steps_done, params)
        driver.save(steps_done, params, opt_state)
    learned = the_plan.learned(params)
    return learned.params, {**state, "ms_per_step": timer.ms_per_step(), "learned": learned}


OUTPUTS = ("metrics.json", "learning_curve.png")


def run(config: Config, data: Omniglot, out_dir: str | os.PathLike | None = None,
        progress: bool = True, conv: Callable | None = None,
        log: Callable[[str], None] | None = None, memory_limit_gb: float | None = None,
        data_source: Any = None, devices: Devices = None) -> tuple[PyTree, dict[str, Any], dict]:
    """Train, meta-test and (with ``out_dir``) write metrics.json and learning_curve.png,
    the two together (see :func:`train` for the checks, the lock and Ctrl-C).
    ``data_source`` (where ``data`` was read from) and where the tasks were split
    (``devices``) are recorded in metrics.json."""
    from .plots import plot
    with contextlib.ExitStack() as stack:
        folder = None if out_dir is None else stack.enter_context(RunFolder(out_dir, OUTPUTS))
        params, history = train(config, data, out_dir, progress, conv, log, memory_limit_gb,
                                devices)
        final = history["evals"][-1]
        metrics = {
            "test_accuracy": {"mean": final["accuracy"], "ci95": final["ci95"],
                              "tasks": config.eval_tasks, "steps": config.eval_inner_steps},
            "config": dataclasses.asdict(config),
            "data": {**history["data"],
                     **({} if data_source is None else {"source": str(data_source)})},
            "train_seconds": history["train_seconds"],
            "train_cpu_seconds": history.get("train_cpu_seconds", 0.0),
            "meta_steps": history["steps"],
            "ms_per_step": history["ms_per_step"],
            "evals": history["evals"],
            "devices": device_record(devices),
            "versions": versions(),
        }
        if folder is not None:
            folder.stage("metrics.json").write_text(json.dumps(metrics, indent=1))
            plot(history, config, folder.stage("learning_curve.png"))
            folder.commit()
    return params, metrics, history
