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
