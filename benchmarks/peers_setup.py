"""Create or refresh ``.venv-peers``: CPU PyTorch with learn2learn and higher, for the peer benchmarks.

The peers live in their own virtual environment so that PyTorch never meets the
project's JAX environment. Three snags, handled here (see BENCHMARKS.md):

- ``pip install learn2learn higher`` would pull a CUDA torch, torchvision, gym, ...
  So torch is pinned first (``torch==2.13.0``; on this machine kind pip finds its CPU
  wheel on disk) and the peers go in with ``--no-deps``. Their MAML code needs only
  torch (and numpy, which we use to exchange arrays).
- learn2learn 0.2.0 is source-only and its shipped C files (old Cython) do not compile
  on Python 3.11, so the sdist is unpacked and its three ``.pyx`` files are
  regenerated with Cython 3 before building.
- ``import learn2learn`` imports ``learn2learn.vision``, which needs torchvision; see
  ``benchmarks/peers/learn2learn_maml.py`` for how only ``learn2learn.algorithms.maml``
  is loaded.

Usage: ``python benchmarks/peers_setup.py [--force]``; prints the peers' Python path.
``ensure_peers_env()`` does the same from Python and is a no-op when the stamp file
says the environment already holds these exact versions.
"""
import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
PEERS_VENV = ROOT / ".venv-peers"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
STAMP = PEERS_VENV / ".installed.json"

TORCH = "torch==2.13.0"
LEARN2LEARN = "learn2learn==0.2.0"
HIGHER = "higher==0.2.1"
BUILD_TOOLS = ["cython>=3.0", "setuptools>=68", "wheel"]
RUNTIME_EXTRAS = ["numpy"]
SPEC = {"torch": TORCH, "learn2learn": LEARN2LEARN, "higher": HIGHER,
        "build": BUILD_TOOLS, "extras": RUNTIME_EXTRAS, "layout": 1}

# Imports what the peer benchmarks use, the way benchmarks/peers/ does.
SMOKE_TEST = """
import sys
sys.path.insert(0, {peers_dir!r})
import torch, higher, torch.func
from learn2learn_maml import load_learn2learn_maml
MAML = load_learn2learn_maml()
print("torch", torch.__version__, "higher", higher.__version__ if hasattr(higher, "__version__") else "?",
      "learn2learn MAML from", sys.modules[MAML.__module__].__file__)
"""


def _run(cmd, **kwargs):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def _pip(*args):
    _run([PEERS_PYTHON, "-m", "pip", "--disable-pip-version-check", "-q", *args])


def _install_learn2learn(workdir):
    """Download the learn2learn sdist, regenerate its C files with Cython 3, build it."""
    workdir = pathlib.Path(workdir)
    _pip("download", "--no-deps", "--no-binary", ":all:", "-d", workdir, LEARN2LEARN)
    (sdist,) = workdir.glob("learn2learn-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(workdir, filter="data")
    (source,) = [p for p in workdir.iterdir() if p.is_dir() and p.name.startswith("learn2learn-")]
    for name in ("meta_dataset", "task_dataset", "transforms"):
        _run([PEERS_VENV / "bin" / "cython", "-3", source / "learn2learn" / "data" / f"{name}.pyx"])
    _pip("install", "--no-deps", "--no-build-isolation", source)


def peers_env_ready():
    """True when ``.venv-peers`` exists and its stamp matches the pinned versions."""
    try:
        return PEERS_PYTHON.exists() and json.loads(STAMP.read_text()) == SPEC
    except (OSError, ValueError):
        return False


def ensure_peers_env(force=False):
    """Build ``.venv-peers`` unless it is already up to date. Returns its python path."""
    if peers_env_ready() and not force:
        return PEERS_PYTHON
    if PEERS_VENV.exists():
        shutil.rmtree(PEERS_VENV)
    print(f"creating the peers' environment in {PEERS_VENV} (a few minutes, once)", flush=True)
    _run([sys.executable, "-m", "venv", PEERS_VENV])
    _pip("install", TORCH, *RUNTIME_EXTRAS)
    _pip("install", *BUILD_TOOLS)
    _pip("install", "--no-deps", HIGHER)
    with tempfile.TemporaryDirectory(prefix="learn2learn-build-") as workdir:
        _install_learn2learn(workdir)
    _run([PEERS_PYTHON, "-c",
          SMOKE_TEST.format(peers_dir=str(ROOT / "benchmarks" / "peers"))])
    STAMP.write_text(json.dumps(SPEC))
    return PEERS_PYTHON


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    print(ensure_peers_env(force=args.force))


if __name__ == "__main__":
    main()
