"""One training run's checkpoint: params, optimizer state, step and a JSON record, one npz."""
import json
import os
from typing import Any

import numpy as np

from .. import npz
from ..types import PyTree


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
