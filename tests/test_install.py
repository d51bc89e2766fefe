"""`pip install minimaml` needs only jax, optax and numpy: the core imports and trains in a
fresh virtual environment without the notebook or Omniglot extras, and the exercise checks
run there (they work on Colab and Binder as they do here)."""
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

CORE_RUN = """
import importlib.util, jax
import minimaml.maml, minimaml.train, minimaml.evaluate
from minimaml.sinusoid.tasks import init_params, sine_loss, task_sampler
absent = [m for m in ("matplotlib", "ipywidgets", "ipympl", "tqdm", "pooch", "PIL", "jupyterlab")
          if importlib.util.find_spec(m) is not None]
assert not absent, f"extras installed with the core: {absent}"
params, _, losses = minimaml.train.meta_train(
    init_params(jax.random.key(0)), sine_loss, task_sampler(2, 5, 5), jax.random.key(1),
    meta_steps=5, inner_lr=0.01, steps_per_call=5)
# The chapters' exercise checks and the seed study's summary need nothing more.
import json, importlib.resources
from minimaml.exercises import all_exercises
from minimaml.exercises.one_task import check_sgd_step
assert check_sgd_step.grade(check_sgd_step.reference).passed and len(all_exercises()) >= 15
json.loads((importlib.resources.files("minimaml") / "data" / "sinusoid_seeds.json").read_text())
print("core ok", minimaml.__file__, len(losses))
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_core_installs_imports_and_trains_without_the_extras(tmp_path):
    venv = tmp_path / "core-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(ROOT)],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]
    # Run outside the checkout, so the installed copy is imported, not ./minimaml.
    # Without PYTHONPATH too: a checkout put on it (as the developers' setup does) would win.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([str(python), "-c", CORE_RUN], cwd=tmp_path, capture_output=True,
                            text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "core ok" in result.stdout and str(venv) in result.stdout
