"""One implementation of MAML in its own process, driven over stdin/stdout by
``benchmarks/peer_comparison.py`` so that runs of different implementations (and of
different Python environments: JAX in ``.venv``, PyTorch in ``.venv-peers``) can
alternate A B A B.

Usage: ``python benchmarks/peers/worker.py IMPL [TORCH_THREADS]`` with IMPL one of
``minimaml``, ``learn2learn``, ``higher``, ``torch.func``; TORCH_THREADS > 0 calls
``torch.set_num_threads`` in the PyTorch workers (0: torch's default). Each request is one JSON line, and so is
each reply (on the original stdout; anything the libraries print goes to stderr):

- ``{"op": "info"}`` -> versions and thread counts.
- ``{"op": "setup", "workload": {...}, "params": "init.npz", "seed": 0,
  "iters_per_run": n, "runs": m, "data": "images.npz"}`` -> ``{}``: prepare to train
  from these parameters (``data``: Omniglot training images (C, 20, 28, 28)).
- ``{"op": "run"}`` -> ``{"seconds": s, "losses": [...]}``: the next ``n`` meta-iterations
  (each samples fresh tasks, computes the second-order meta-gradient, steps Adam).
- ``{"op": "save", "out": "p.npz"}`` -> ``{}``: the parameters trained so far, in
  minimaml's layout (``w0, b0, ...``), for the driver to evaluate them all alike.
- ``{"op": "grad", "workload": {...}, "params": p.npz, "batch": b.npz, "out": g.npz,
  "inner_steps": k, "inner_lr": a, "first_order": false}`` -> ``{}``: the meta-gradient in float64 at
  ``params`` on ``batch`` (``support_x, support_y, query_x, query_y``), written to ``out``
  in minimaml's layout (``w0, b0, ...``). The minimaml worker needs JAX_ENABLE_X64=1.
- ``{"op": "quit"}``.
"""
import json
import os
import pathlib
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
IMPLS = ("minimaml", "learn2learn", "higher", "torch.func")


class Channel:
    """JSON lines in from stdin, out on the original stdout (fd 1 then points at stderr)."""

    def __init__(self):
        self._out = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr

    def read(self):
        line = sys.stdin.readline()
        return json.loads(line) if line else {"op": "quit"}

    def reply(self, **fields):
        self._out.write(json.dumps(fields) + "\n")
        self._out.flush()


class Stop(Exception):
    pass


# What the last ``setup`` trained, for ``save``: minimaml params or the torch model.
TRAINED = {}


# ---------------------------------------------------------------- minimaml (JAX)

LAYER_KEYS = ("w", "b", "scale", "offset")


def _minimaml_params(arrays):
    """npz (``w0, b0, ...``; conv blocks ``w{i}, scale{i}, offset{i}``) -> params list."""
    import jax.numpy as jnp
    count = len([k for k in arrays.keys() if k.startswith("w")])
    return [{name: jnp.asarray(arrays[f"{name}{i}"]) for name in LAYER_KEYS
             if f"{name}{i}" in arrays.keys()} for i in range(count)]


def save_minimaml_params(path, params):
    np.savez(path, **{f"{name}{i}": np.asarray(value)
                      for i, layer in enumerate(params) for name, value in layer.items()})


def minimaml_task(workload, data_path=None):
    """(loss_fn, sample_tasks or None) of a workload, from the library."""
    if workload["task"] == "sinusoid":
        from minimaml import sinusoid
        return sinusoid.sine_loss, sinusoid.task_sampler(
            workload["meta_batch"], workload["support"], workload["query"])
    if workload["task"] == "omniglot":
        import jax.numpy as jnp
        from minimaml import omniglot
        _, loss_fn = omniglot.classifier()
        if data_path is None:
            return loss_fn, None
        images = jnp.asarray(np.load(data_path)["images"])
        return loss_fn, omniglot.task_sampler(images, workload["meta_batch"], workload["ways"],
                                              workload["shots"], workload["queries"])
    raise ValueError(f"unknown workload task {workload['task']!r}")


def minimaml_info():
    import jax
    return {"impl": "minimaml", "versions": {"jax": jax.__version__},
            "threads": f"XLA CPU, {jax.device_count()} device(s), "
                       f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"}


def minimaml_train(channel, setup):
    """Meta-train with ``minimaml.train.meta_train``, ``iters_per_run`` steps per jitted
    call; the ``on_chunk`` callback reports each chunk and waits for the next ``run``."""
    import jax
    from minimaml.train import meta_train

    workload = setup["workload"]
    loss_fn, sampler = minimaml_task(workload, setup.get("data"))
    params = _minimaml_params(np.load(setup["params"]))
    started = [None]

    def wait_for_run():
        request = channel.read()
        if request["op"] != "run":
            raise Stop
        started[0] = time.perf_counter()

    def on_chunk(step, params, opt_state, losses):
        TRAINED["params"] = params
        channel.reply(seconds=time.perf_counter() - started[0], losses=losses.tolist())
        if step < total:
            wait_for_run()

    total = setup["iters_per_run"] * setup["runs"]
    channel.reply()
    try:
        wait_for_run()
        meta_train(params, loss_fn, sampler, jax.random.key(setup["seed"]),
                   meta_steps=total, inner_lr=workload["inner_lr"],
                   inner_steps=workload["inner_steps"], meta_lr=workload["meta_lr"],
                   steps_per_call=setup["iters_per_run"], on_chunk=on_chunk)
    except Stop:
        pass


def minimaml_grad(request):
    import jax
    from minimaml.maml import maml_objective

    loss_fn, _ = minimaml_task(request["workload"])
    if not jax.config.jax_enable_x64:
        raise RuntimeError("the minimaml gradient check needs JAX_ENABLE_X64=1")
    params = _minimaml_params(np.load(request["params"]))
    batch = np.load(request["batch"])
    grads = jax.grad(maml_objective)(
        params, loss_fn, (batch["support_x"], batch["support_y"]),
        (batch["query_x"], batch["query_y"]), request["inner_lr"], request["inner_steps"],
        first_order=request.get("first_order", False))
    save_minimaml_params(request["out"], grads)


# ---------------------------------------------------------------- PyTorch peers

def peer_class(impl):
    sys.path.insert(0, str(HERE))
    if impl == "learn2learn":
        from learn2learn_maml import Learn2LearnMAML
        return Learn2LearnMAML
    if impl == "higher":
        from higher_maml import HigherMAML
        return HigherMAML
    from torch_func_maml import TorchFuncMAML
    return TorchFuncMAML


def peer_info(impl):
    import importlib.metadata
    import torch
    versions = {"torch": torch.__version__}
    if impl in ("learn2learn", "higher"):
        versions[impl] = importlib.metadata.version(impl)
    return {"impl": impl, "versions": versions,
            "threads": f"torch {torch.get_num_threads()} intra-op thread(s)"}


def peer_task(workload, data_path=None, generator=None):
    """(model, loss_fn, sample_tasks() or None) of a workload, in torch."""
    import torch
    import torch.nn.functional as F
    from common import OmniglotNet, sample_omniglot_tasks, sample_sine_tasks, sine_net

    if workload["task"] == "sinusoid":
        return sine_net(), F.mse_loss, lambda: sample_sine_tasks(
            generator, workload["meta_batch"], workload["support"], workload["query"])
    if workload["task"] == "omniglot":
        images = None if data_path is None else torch.from_numpy(np.load(data_path)["images"])
        return OmniglotNet(workload["ways"]), F.cross_entropy, lambda: sample_omniglot_tasks(
            generator, images, workload["meta_batch"], workload["ways"], workload["shots"],
            workload["queries"])
    raise ValueError(f"unknown workload task {workload['task']!r}")


def peer_train(channel, impl, setup):
    import torch
    from common import load_minimaml_params

    workload = setup["workload"]
    torch.manual_seed(setup["seed"])
    generator = torch.Generator().manual_seed(setup["seed"])
    model, loss_fn, sample = peer_task(workload, setup.get("data"), generator)
    model = load_minimaml_params(model, np.load(setup["params"]))
    peer = peer_class(impl)(model, inner_lr=workload["inner_lr"], loss_fn=loss_fn,
                            inner_steps=workload["inner_steps"], meta_lr=workload["meta_lr"])
    TRAINED["model"] = model
    channel.reply()
    for _ in range(setup["runs"]):
        if channel.read()["op"] != "run":
            return
        losses = []
        start = time.perf_counter()
        for _ in range(setup["iters_per_run"]):
            losses.append(peer.meta_step(sample()))
        channel.reply(seconds=time.perf_counter() - start, losses=losses)


def peer_grad(impl, request):
    import torch
    from common import load_minimaml_params, to_minimaml_layout

    if request.get("first_order", False):
        raise ValueError("the peers are benchmarked second order only")
    model, loss_fn, _ = peer_task(request["workload"])
    model = load_minimaml_params(model.double(), np.load(request["params"]))
    batch = np.load(request["batch"])
    batch = tuple(torch.from_numpy(batch[k]).long()
                  if np.issubdtype(batch[k].dtype, np.integer) else torch.from_numpy(batch[k])
                  for k in ("support_x", "support_y", "query_x", "query_y"))
    peer = peer_class(impl)(model, inner_lr=request["inner_lr"], loss_fn=loss_fn,
                            inner_steps=request["inner_steps"], meta_lr=1e-3)
    np.savez(request["out"], **to_minimaml_layout(model, peer.meta_gradient(batch)))


# ---------------------------------------------------------------- main loop

def main(impl, torch_threads=0):
    if impl not in IMPLS:
        raise SystemExit(f"IMPL must be one of {IMPLS}; got {impl!r}")
    channel = Channel()
    if impl == "minimaml":
        sys.path.insert(0, str(ROOT))
    else:
        sys.path.insert(0, str(HERE))
        if torch_threads > 0:
            import torch
            torch.set_num_threads(torch_threads)
    while True:
        request = channel.read()
        op = request["op"]
        try:
            if op == "quit":
                return
            elif op == "info":
                channel.reply(**(minimaml_info() if impl == "minimaml" else peer_info(impl)))
            elif op == "setup":
                if impl == "minimaml":
                    minimaml_train(channel, request)
                else:
                    peer_train(channel, impl, request)
            elif op == "save":
                if impl == "minimaml":
                    save_minimaml_params(request["out"], TRAINED["params"])
                else:
                    from common import to_minimaml_layout
                    model = TRAINED["model"]
                    np.savez(request["out"], **to_minimaml_layout(model, list(model.parameters())))
                channel.reply()
            elif op == "grad":
                minimaml_grad(request) if impl == "minimaml" else peer_grad(impl, request)
                channel.reply()
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as error:  # report to the driver rather than hang it
            channel.reply(error=f"{type(error).__name__}: {error}")
            raise


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "", int(sys.argv[2]) if len(sys.argv) > 2 else 0)
