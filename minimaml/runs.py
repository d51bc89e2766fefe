"""What every experiment writes beside its results: the software and machine it ran on."""
import platform
from typing import Any

import jax
import numpy as np
import optax


def versions() -> dict[str, Any]:
    """The ``versions`` block of ``metrics.json``: library versions, backend and device."""
    from . import __version__
    return {"minimaml": __version__, "jax": jax.__version__, "optax": optax.__version__,
            "numpy": np.__version__, "python": platform.python_version(),
            "backend": jax.default_backend(), "device": str(jax.devices()[0]),
            "device_count": jax.device_count()}


def _plain(value: Any) -> Any:
    """``value`` with numpy/JAX numbers and arrays turned into JSON's floats, ints and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    array = np.asarray(value)
    return array.tolist() if array.ndim else array.item()


def write_results(path: Any, **results: Any) -> None:
    """Write a chapter's key numbers as JSON to ``path`` (the notebook tests read them);
    do nothing when ``path`` is None, as when a reader runs the chapter."""
    if path is None:
        return
    import json
    import pathlib
    pathlib.Path(path).write_text(json.dumps(_plain(results), indent=1))
