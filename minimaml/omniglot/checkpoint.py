"""One training run's checkpoint: params, optimizer state, step and a JSON record, one npz.

The record holds the run's config and its data's identity (:func:`~.data.content_sha256`),
so that a run resumes only from a checkpoint of the same run (:func:`check_same_run`).
"""
import json
import os
from typing import Any

import numpy as np

from .. import npz
from ..types import PyTree

# What a resumed run may change: how long and how it runs, not what it computes.
RESUMABLE_CHANGES = ("meta_steps", "max_train_seconds", "max_train_cpu_seconds",
                     "checkpoint_seconds", "steps_per_call", "remat", "eval_every")
# Config fields added later: a checkpoint that lacks one was written with this value.
ADDED_FIELDS = {"algorithm": "maml", "algorithm_options": []}


def save_checkpoint(path: os.PathLike, step: int, params: PyTree, opt_state: PyTree,
                    state: dict[str, Any]) -> None:
    """Write params, optimizer state and a JSON state dict atomically as one npz."""
    npz.save(path, {"params": params, "opt_state": opt_state}, step=np.array(step),
             state=np.array(json.dumps(state)))


def load_checkpoint(path: os.PathLike, params_like: PyTree,
                    opt_state_like: PyTree) -> tuple[int, PyTree, PyTree, dict[str, Any]]:
    """(step, params, opt_state, state) from :func:`save_checkpoint`, shaped like the
    given templates; ValueError naming the file when it does not fit them."""
    try:
        tree, extra = npz.load(path, {"params": params_like, "opt_state": opt_state_like})
        return (int(extra["step"]), tree["params"], tree["opt_state"],
                json.loads(str(extra["state"])))
    except (KeyError, ValueError) as err:
        raise ValueError(f"{path}: not a usable checkpoint for this config ({err}); "
                         f"delete it or choose another --out") from None


def check_same_run(path: os.PathLike, state: dict[str, Any], config: dict[str, Any],
                   data: dict[str, Any]) -> str | None:
    """Raise ValueError naming ``path`` unless the checkpoint's record ``state`` was
    written with ``config`` (but for :data:`RESUMABLE_CHANGES`) and the same ``data``
    (``{"sha256", "characters"}``). Returns a warning for a checkpoint of an older
    version that recorded no data, None otherwise."""
    recorded = {**ADDED_FIELDS, **state.get("config", {})}
    config = json.loads(json.dumps(config))           # as the record holds it
    changed = sorted(f for f in set(config) | set(recorded)
                     if f not in RESUMABLE_CHANGES and recorded.get(f) != config.get(f))
    if changed:
        differences = ", ".join(f"{f} {recorded.get(f)!r} there, {config.get(f)!r} now"
                                for f in changed[:4])
        raise ValueError(f"{path} was written with another config ({differences}); resume "
                         f"with the same settings, or choose another --out")
    if "data" not in state:
        return (f"{path} does not record its data (an older checkpoint); assuming it was "
                f"trained on this data")
    theirs = state["data"]
    if theirs.get("sha256") != data["sha256"]:
        raise ValueError(
            f"{path} was trained on other data ({theirs.get('characters')} characters, "
            f"sha256 {str(theirs.get('sha256'))[:12]}...; this run's data: "
            f"{data['characters']} characters, sha256 {data['sha256'][:12]}...); resume with "
            f"the data it was trained on, or choose another --out")
    return None
