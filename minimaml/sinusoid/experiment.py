"""The paper's sinusoid experiment: MAML and the pretrained baseline, trained and meta-tested.

Note: the paper says α = 0.01; the official code's sinusoid command runs with its
default ``update_lr`` of 0.001. We follow the paper (``Config.inner_lr`` changes it).
"""
import contextlib
import dataclasses
import json
import os
import pathlib
import time
from typing import Any, Callable

import jax
import numpy as np

from .. import npz
from ..checks import check_int, check_positive
from ..devices import Devices, device_record, process_share
from ..evaluate import finetune_curves, mean_ci95
from .. import family
from ..progress import ChunkTimer, ProgressBar, chain
from ..runs import Interrupted, RunFolder, StopOnInterrupt, check_memory, versions
from ..train import TrainingDiverged, pretrain
from ..types import OnChunk, PyTree
from .tasks import SineTasks, init_params, sample_tasks, sine_loss, task_sampler


MAX_STEPS = 2**31 - 1     # training steps are counted in 32-bit integers on the device


@dataclasses.dataclass(frozen=True)
class Config:
    """The experiment's settings; the defaults are the paper's sinusoid config.

    Checked when made (a ValueError names the first bad field); the code below trusts it.
    """
    meta_steps: int = 70_000
    meta_batch: int = 25
    support_size: int = 10       # K during meta-training
    query_size: int = 10         # query points per training task
    inner_steps: int = 1
    inner_lr: float = 0.01       # α
    meta_lr: float = 1e-3        # β (Adam)
    first_order: bool = False
    hidden: tuple = (40, 40)
    seed: int = 0
    eval_tasks: int = 600
    eval_query: int = 100        # held-out points per evaluation task
    eval_shots: tuple = (5, 10, 20)
    eval_steps: int = 10
    algorithm: str = "maml"      # one of minimaml.family.ALGORITHMS
    algorithm_options: tuple = ()    # (name, value) pairs for the algorithm's recipe

    def __post_init__(self):
        for name in ("meta_batch", "support_size", "query_size", "eval_tasks", "eval_query"):
            check_int(getattr(self, name), name, 1)
        check_int(self.meta_steps, "meta_steps", 1, MAX_STEPS)
        for k in self.eval_shots:
            check_int(k, "eval_shots", 1)
        for width in self.hidden:
            check_int(width, "hidden", 1)
        check_int(self.inner_steps, "inner_steps", 0)
        check_int(self.eval_steps, "eval_steps", 0)
        check_int(self.seed, "seed", 0, 2**63 - 1)
        check_positive(self.inner_lr, "inner_lr")
        check_positive(self.meta_lr, "meta_lr")
        family.check_recipe(self.algorithm, self.options())

    def options(self) -> dict[str, Any]:
        """The keyword arguments of the algorithm's recipe (:func:`minimaml.family.plan`)."""
        return family.recipe_options(self.algorithm, self.inner_steps, self.first_order,
                                     self.algorithm_options)

    def validate(self) -> "Config":
        """The checks already ran when the config was made; kept for callers that ask."""
        return self


def estimate_memory(config: Config) -> dict[str, tuple[float, str]]:
    """Bytes of the largest arrays of each phase (an estimate, for refusing early a run
    that cannot fit), with the settings that size them; see :func:`runs.check_memory`."""
    dims = (1, *config.hidden, 1)
    num_params = sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))
    width = sum(config.hidden)
    shots, states = max(config.eval_shots), config.eval_steps + 1
    per_task = (states * (num_params + config.eval_query * width)
                + 2 * (shots + config.eval_query) + 3 * shots * width)
    batch = config.meta_batch * (config.support_size + config.query_size) * width
    return {
        "the training": (4.0 * (4 * config.meta_steps + 8 * (config.inner_steps + 1) * batch),
                         "meta_steps or meta_batch"),
        "the meta-test": (4.0 * _MEMORY_OVERHEAD * config.eval_tasks * per_task,
                          "eval_tasks or eval_steps"),
    }


# Measured peak / estimate of the meta-test (XLA's temporaries): 1.11 and 1.12 at 20,000
# tasks x 10 steps and 5,000 x 40 (CPU), rounded up.
_MEMORY_OVERHEAD = 1.25


def train(config: Config, progress: bool = True, should_stop: OnChunk | None = None,
          devices: Devices = None) -> tuple[PyTree, PyTree | None, dict[str, Any]]:
    """Meta-train ``config.algorithm`` (MAML by default) and the pretrained baseline from
    the same initialisation.

    Returns ``(maml_params, pretrained_params, history)`` with history holding both
    loss curves and their wall times (seconds, compilation included), the median ms
    per meta-step and ``learned`` (the :class:`minimaml.family.Learned`: θ and how it
    is fine-tuned).

    ``should_stop``, an ``on_chunk`` callback (e.g. :class:`minimaml.runs.StopOnInterrupt`),
    can stop training early: then ``history["maml_steps"]`` / ``["pretrained_steps"]``
    say how far each got, and pretraining (not started when MAML was stopped) returns
    None as its params.

    ``devices`` splits every meta-batch's tasks across devices (see
    :func:`minimaml.train.optimize`); with several processes each draws its share.
    """
    key = jax.random.key(config.seed)
    init_key, maml_key, pre_key = jax.random.split(key, 3)
    params0 = init_params(init_key, config.hidden)
    sampler = task_sampler(process_share(config.meta_batch), config.support_size,
                           config.query_size)

    start, timer = time.perf_counter(), ChunkTimer()
    name = {"maml": "FOMAML" if config.first_order else "MAML"}.get(config.algorithm,
                                                                     config.algorithm)
    with ProgressBar(config.meta_steps, name, enabled=progress) as bar:
        learned, _, maml_losses = family.meta_train(
            config.algorithm, params0, sine_loss, sampler, maml_key,
            meta_steps=config.meta_steps, inner_lr=config.inner_lr, meta_lr=config.meta_lr,
            options=config.options(), on_chunk=chain(timer, bar, should_stop, timer.restart),
            devices=devices)
    maml_params = jax.block_until_ready(learned.params)
    maml_seconds = time.perf_counter() - start

    pre_params, pre_losses, pre_seconds = None, np.zeros((0,), np.float32), 0.0
    if len(maml_losses) == config.meta_steps:
        start = time.perf_counter()
        with ProgressBar(config.meta_steps, "pretraining", enabled=progress) as bar:
            pre_params, _, pre_losses = pretrain(
                params0, sine_loss, sampler, pre_key, steps=config.meta_steps,
                lr=config.meta_lr, on_chunk=chain(bar, should_stop), devices=devices)
        jax.block_until_ready(pre_params)
        pre_seconds = time.perf_counter() - start
    history = {"maml_losses": maml_losses, "pretrained_losses": pre_losses,
               "maml_seconds": maml_seconds, "pretrained_seconds": pre_seconds,
               "maml_steps": len(maml_losses), "pretrained_steps": len(pre_losses),
               "ms_per_step": timer.ms_per_step(), "learned": learned}
    return maml_params, pre_params, history


def evaluation_tasks(config: Config, shots: int) -> SineTasks:
    """The fixed, fresh meta-test tasks for K = ``shots`` (seeded apart from training)."""
    key = jax.random.fold_in(jax.random.key(config.seed), 10_000 + shots)
    return sample_tasks(key, config.eval_tasks, shots, config.eval_query)


def evaluate(params: PyTree, config: Config, inner_lr: float | None = None,
             max_diverged_fraction: float = 0.1,
             learned: family.Learned | None = None, devices: Devices = None) -> dict[str, Any]:
    """Meta-test ``params``: for each K, query MSE mean and 95% CI after 0..eval_steps steps.

    Fine-tuning from a meta-learned θ with several steps can blow up on a rare task
    (MAML only trained its one-step behaviour). A task whose query MSE becomes
    non-finite at any step is counted in ``diverged_tasks`` and left out of the mean
    at every step, so each curve averages the same tasks; if more than
    ``max_diverged_fraction`` of the tasks diverge, this raises TrainingDiverged.

    With ``learned`` (a :class:`minimaml.family.Learned`), θ is fine-tuned its way
    (learned rates, ANIL's head only) and ``params``/``inner_lr`` are not used. Rates
    learned for fewer steps than ``eval_steps`` may blow up when taken further (Meta-SGD
    learns one step's rates): then the curve stops at the last step where at most
    ``max_diverged_fraction`` of the tasks have diverged (later entries None,
    ``diverged_after_step`` says where) instead of raising.

    Returns ``{"5": {"mse": [...], "ci95": [...], "diverged_tasks": n}, ...}``
    (lists of eval_steps + 1). ``devices`` splits the tasks across devices.
    """
    inner_lr = config.inner_lr if inner_lr is None else check_positive(inner_lr, "inner_lr")
    results = {}
    for shots in config.eval_shots:
        tasks = evaluation_tasks(config, shots)
        if learned is None:
            curves = finetune_curves(params, sine_loss, tasks.support, tasks.query, inner_lr,
                                     config.eval_steps, devices=devices)
        else:
            curves = learned.finetune_curves(sine_loss, tasks.support, tasks.query,
                                             config.eval_steps, devices=devices)
        finite_tasks = np.isfinite(curves).all(axis=1)
        diverged = int((~finite_tasks).sum())
        if diverged > max_diverged_fraction * len(curves) and learned is not None \
                and learned.learned_lr:
            results[str(shots)] = _curve_until_divergence(curves, max_diverged_fraction)
            continue
        if diverged > max_diverged_fraction * len(curves):
            first_step = int(np.argmin(np.isfinite(curves).all(axis=0)))
            raise TrainingDiverged(first_step, float("nan"),
                f"fine-tuning diverged at meta-test (K={shots}) on {diverged} of {len(curves)} "
                f"tasks, the query MSE becoming non-finite after step {first_step}; try a "
                f"smaller learning rate (inner_lr={inner_lr})")
        mean, ci = mean_ci95(curves[finite_tasks])
        results[str(shots)] = {"mse": mean.tolist(), "ci95": ci.tolist(),
                               "diverged_tasks": diverged, "tasks": len(curves)}
    return results


def _curve_until_divergence(curves: np.ndarray, max_diverged_fraction: float) -> dict[str, Any]:
    finite_so_far = np.cumprod(np.isfinite(curves), axis=1).astype(bool)
    last = int(np.flatnonzero(finite_so_far.mean(axis=0) >= 1 - max_diverged_fraction)[-1])
    kept = finite_so_far[:, last]
    mean, ci = mean_ci95(curves[kept, :last + 1])
    missing = [None] * (curves.shape[1] - last - 1)
    return {"mse": mean.tolist() + missing, "ci95": ci.tolist() + missing,
            "diverged_tasks": int((~kept).sum()), "tasks": len(curves),
            "diverged_after_step": last}


OUTPUTS = ("maml_params.npz", "maml_inner_lr.npz", "pretrained_params.npz", "metrics.json",
           "sinusoid.png")


def run(config: Config, out_dir: str | os.PathLike | None = None, progress: bool = True,
        log: Callable[[str], None] | None = None,
        memory_limit_gb: float | None = None,
        devices: Devices = None) -> tuple[PyTree, PyTree, dict[str, Any]]:
    """Train, meta-test and (if ``out_dir``) write params, metrics.json and sinusoid.png.

    Before the work: the run's largest arrays are estimated and refused above
    ``memory_limit_gb`` (default: the device's memory), and ``out_dir`` is made, checked
    writable and locked (:class:`minimaml.runs.RunFolder`). The outputs appear together
    at the end; a failed run leaves the folder's previous results as they were.

    With ``out_dir``, Ctrl-C stops training at the next chunk and the finished parts —
    the params of each model trained so far, with ``interrupted.json`` saying how far —
    go to ``out_dir/interrupted/``; :class:`minimaml.runs.Interrupted` says so.
    ``log`` receives the lines meant for the user (the Ctrl-C notice). ``devices``
    splits training and meta-test tasks across devices (:mod:`minimaml.devices`);
    metrics.json records where (``"devices"``).
    """
    from .plots import plot
    check_memory(estimate_memory(config), memory_limit_gb)
    with contextlib.ExitStack() as stack:
        folder = stop = None
        if out_dir is not None:
            folder = stack.enter_context(RunFolder(out_dir, OUTPUTS))
            stop = stack.enter_context(StopOnInterrupt(log))
        maml_params, pre_params, history = train(config, progress=progress, should_stop=stop,
                                                 devices=devices)
        if stop is not None and stop.requested:
            raise Interrupted(_save_interrupted(folder, config, maml_params, pre_params,
                                                history, "training"))
        metrics = {
            "config": dataclasses.asdict(config),
            "train_seconds": history["maml_seconds"],
            "pretrain_seconds": history["pretrained_seconds"],
            "ms_per_step": history["ms_per_step"],
            "maml": evaluate(maml_params, config, learned=history["learned"], devices=devices),
            "pretrained": evaluate(pre_params, config, devices=devices),
            "devices": device_record(devices),
            "versions": versions(),
        }
        curves = {"maml_losses": history["maml_losses"],
                  "pretrained_losses": history["pretrained_losses"]}
        if folder is not None:
            if stop.requested:
                raise Interrupted(_save_interrupted(folder, config, maml_params, pre_params,
                                                    history, "the meta-test"))
            save_params(folder.stage("maml_params.npz"), maml_params)
            if history["learned"].learned_lr:
                save_params(folder.stage("maml_inner_lr.npz"), history["learned"].inner_lr)
            save_params(folder.stage("pretrained_params.npz"), pre_params)
            folder.stage("metrics.json").write_text(json.dumps(metrics, indent=1))
            plot(maml_params, pre_params, {**metrics, "history": curves}, config,
                 path=folder.stage("sinusoid.png"), learned=history["learned"])
            folder.commit()
    return maml_params, pre_params, {**metrics, "history": curves}


def _save_interrupted(folder: RunFolder, config: Config, maml_params: PyTree,
                      pre_params: PyTree | None, history: dict[str, Any], stage: str) -> str:
    """Write the parts a stopped run finished into ``folder/interrupted/``; a line saying
    what went where."""
    steps = {"maml": history["maml_steps"], "pretrained": history["pretrained_steps"]}
    if stage == "training":
        stage = "MAML training" if steps["maml"] < config.meta_steps else "pretraining"
    saved = []
    for name, params in (("maml", maml_params), ("pretrained", pre_params)):
        if params is not None:
            save_params(folder.stage(f"{name}_params.npz"), params)
            done = "finished" if steps[name] == config.meta_steps else \
                f"after {steps[name]} of {config.meta_steps} steps"
            saved.append(f"{'MAML' if name == 'maml' else 'pretrained'} params ({done})")
    folder.stage("interrupted.json").write_text(json.dumps(
        {"interrupted_during": stage, "steps": steps, "config": dataclasses.asdict(config),
         "versions": versions()}, indent=1))
    where = folder.commit(into="interrupted")
    return (f"stopped during {stage}; saved the {' and the '.join(saved)} in {where}/ "
            f"(the results already in {folder.path} are as they were)")


def save_params(path: str | pathlib.Path, params: PyTree) -> None:
    """Save MLP params (list of {"w", "b"}) as a plain npz (see :mod:`minimaml.npz`)."""
    npz.save(path, params)


def load_params(path: str | pathlib.Path) -> PyTree:
    """Load MLP params written by :func:`save_params` (no pickle), as jax arrays."""
    params, _ = npz.load(path)
    return jax.tree.map(jax.numpy.asarray, params)


def format_table(metrics: dict[str, Any], shots: str = "5",
                 steps: tuple[int, ...] = (1, 5, 10)) -> str:
    """A markdown table of query MSE ± 95% CI after the given steps, both models.

    Steps beyond the evaluated budget are left out; the budget's last step is shown.
    """
    budget = len(metrics["maml"][shots]["mse"]) - 1
    steps = sorted({n for n in steps if n <= budget} | {budget})
    head = "| model | " + " | ".join(f"{n} step{'s' * (n != 1)}" for n in steps) + " |"
    lines = [head, "|---" * (len(steps) + 1) + "|"]
    for name in ("maml", "pretrained"):
        res = metrics[name][shots]
        cells = ["diverged" if res["mse"][n] is None else
                 f"{res['mse'][n]:.3f} ± {res['ci95'][n]:.3f}" for n in steps]
        note = f" ({res['diverged_tasks']} of {res['tasks']} tasks diverged, left out)" \
            if res.get("diverged_tasks") else ""
        label = metrics.get("config", {}).get("algorithm", "maml") if name == "maml" else name
        lines.append(f"| {label} (K={shots}){note} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
