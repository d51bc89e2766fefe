"""More devices: the task axis of a meta-batch split across a mesh, and across processes.

MAML's meta-batch is a batch of independent tasks, so it splits cleanly: each device
adapts its share of the tasks, and the mean meta-gradient needs one all-reduce, which
XLA inserts by itself. Here that takes three pieces:

- :func:`task_mesh` — a 1-D :class:`jax.sharding.Mesh` with one axis, ``"tasks"``
  (:data:`TASK_AXIS`), over n devices.
- :func:`shard_tasks` — inside a jitted step, the task batch laid out along that axis
  (``NamedSharding(mesh, P("tasks"))``); params and optimizer state stay replicated.
  A meta-batch that does not divide by the device count is padded by XLA to the next
  multiple and the padding masked out of every reduction, so the mean over tasks stays
  exact (the last devices hold padding in place of tasks).
- :func:`initialize_distributed` and :class:`TaskShares` — many processes (hosts):
  each process draws its own share of every meta-batch from ``fold_in(key, process)``.

:func:`minimaml.train.optimize` (and so ``meta_train``, ``pretrain``) and
:func:`minimaml.evaluate.finetune_curves` take ``devices=`` and use these.

The multi-host recipe (the same script on every host, e.g. two)::

    # host 0:  python train.py --coordinator 10.0.0.1:1234 --processes 2 --process-id 0
    # host 1:  python train.py --coordinator 10.0.0.1:1234 --processes 2 --process-id 1
    initialize_distributed(coordinator, processes, process_id)  # before any other JAX call
    sampler = task_sampler(process_share(meta_batch), ...)     # this process's share
    params, _, _ = meta_train(params, loss_fn, sampler, key, ...)

Every process passes the same ``params`` and ``key``; ``optimize`` splits each
meta-batch over all devices of all processes (its ``devices=None`` means all of them
once there are several processes), and every process ends with the same params.
"""
import dataclasses
import os
import socket
import sys
import threading
import time
from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from .checks import ArgumentError, check_int, check_number
from .types import Batch, PyTree, SampleTasks

TASK_AXIS = "tasks"
"""The name of the mesh axis the task axis of a meta-batch is split along."""

Devices = int | Sequence[jax.Device] | Mesh | None
"""What ``devices=`` accepts: a count, a list of devices, a mesh with a ``"tasks"`` axis."""


def task_mesh(devices: Devices = None) -> Mesh:
    """A mesh whose ``"tasks"`` axis spans the devices to split meta-batches over.

    Args:
      devices: None (every device of every process), a count n (the first n devices;
        with several processes, n / process_count devices of each process), a list of
        devices, or a :class:`~jax.sharding.Mesh` that has an axis named ``"tasks"``
        (other axes are kept; the task axis is split along ``"tasks"`` only).

    Raises:
      ValueError: a count outside 1..(devices available), an empty list, or a mesh
        without a ``"tasks"`` axis; the message names ``devices``.
    """
    if isinstance(devices, Mesh):
        if TASK_AXIS not in devices.axis_names:
            raise ValueError(f"devices: the mesh must have an axis named {TASK_AXIS!r} "
                             f"(minimaml.devices.TASK_AXIS) to split the tasks along; its "
                             f"axes are {tuple(devices.axis_names)}")
        # Auto axes: XLA may place what we do not constrain (params, intermediates).
        return Mesh(devices.devices, devices.axis_names,
                    axis_types=(AxisType.Auto,) * len(devices.axis_names))
    if isinstance(devices, (list, tuple, np.ndarray)):
        chosen = list(np.ravel(np.asarray(devices, dtype=object)))
        if not chosen or not all(isinstance(d, jax.Device) for d in chosen):
            raise ValueError(f"devices must be None, a count >= 1, a non-empty list of "
                             f"jax devices or a Mesh with a {TASK_AXIS!r} axis; got {devices!r}")
    else:
        chosen = _first_devices(devices)
    return jax.make_mesh((len(chosen),), (TASK_AXIS,), axis_types=(AxisType.Auto,),
                         devices=chosen)


def _first_devices(count):
    available = jax.devices()
    if count is None:
        return available
    processes = jax.process_count()
    count = check_int(count, "devices", 1, len(available))
    if processes == 1:
        return available[:count]
    if count % processes:
        raise ValueError(f"devices must be a multiple of the process count {processes} (each "
                         f"process gives the same number of devices); got {count}")
    return [device for process in range(processes)
            for device in [d for d in available if d.process_index == process]
            [:count // processes]]


def use_cpu_devices(count: int) -> int:
    """Before JAX starts: give its CPU backend ``count`` devices (XLA host devices, all
    sharing the machine's cores), so that ``devices=count`` can split meta-batches on a
    CPU. Accelerators are not affected. Once JAX has started, its devices stay as they
    are (then :func:`task_mesh` refuses a count above them). Returns ``count``."""
    count = check_int(count, "devices", 1)
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:     # JAX already started: keep the devices it has
        pass
    return count


def process_share(meta_batch: int) -> int:
    """The tasks each process draws per meta-step: ``meta_batch / jax.process_count()``
    (a ValueError naming both numbers unless it divides)."""
    meta_batch, processes = check_int(meta_batch, "meta_batch", 1), jax.process_count()
    if meta_batch % processes:
        raise ValueError(f"meta_batch {meta_batch} does not divide among {processes} "
                         f"processes (each draws an equal share); use a multiple of "
                         f"{processes}")
    return meta_batch // processes


def task_sharding(devices: Devices) -> NamedSharding | None:
    """``NamedSharding(mesh, P("tasks"))`` for ``devices``, or None where nothing is split:
    ``devices=None`` in a single process, or a mesh of one device (then training and
    evaluation run exactly the computation they run without a mesh)."""
    if devices is None and jax.process_count() == 1:
        return None
    mesh = task_mesh(devices)
    return NamedSharding(mesh, PartitionSpec(TASK_AXIS)) if mesh.size > 1 else None


def device_record(devices: Devices = None) -> dict:
    """Where a run splits its tasks, for ``metrics.json``: the number of devices, the
    processes, this process's number, the platform and the kind of device."""
    sharding = task_sharding(devices)
    used = list(sharding.mesh.devices.flat) if sharding is not None else jax.devices()[:1]
    return {"devices": len(used), "processes": jax.process_count(),
            "process_id": jax.process_index(), "platform": used[0].platform,
            "device_kind": used[0].device_kind}


def shard_tasks(batch: Batch, sharding: NamedSharding) -> Batch:
    """Inside jit: lay every array of ``batch`` out along its leading (task) axis."""
    return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharding), batch)


def replicated(sharding: NamedSharding) -> NamedSharding:
    """The sharding that keeps a whole copy on every device of ``sharding``'s mesh."""
    return NamedSharding(sharding.mesh, PartitionSpec())


def replicate(tree: PyTree, sharding: NamedSharding) -> PyTree:
    """Outside jit: a whole copy of ``tree``'s arrays on every device of the mesh (with
    several processes, each passes the same values)."""
    if jax.process_count() == 1:
        return jax.device_put(tree, replicated(sharding))
    tree = jax.tree.map(lambda x: x if hasattr(x, "shape") else jnp.asarray(x), tree)
    return multihost_utils.host_local_array_to_global_array(tree, sharding.mesh,
                                                            PartitionSpec())


def process_zero_decides(flag: bool) -> bool:
    """Process 0's ``flag``, in every process (a collective: all processes must call it),
    so that e.g. a time limit stops every process at the same step."""
    if jax.process_count() == 1:
        return bool(flag)
    return bool(multihost_utils.broadcast_one_to_all(np.asarray(bool(flag))))


def _fold_in_each(key, count):
    return jax.vmap(lambda share: jax.random.fold_in(key, share))(jnp.arange(count))


@partial(jax.tree_util.register_dataclass, data_fields=["sample_tasks"],
         meta_fields=["shares"])
@dataclasses.dataclass(frozen=True)
class TaskShares:
    """``sampler(key)``: ``shares`` batches, batch p drawn by ``sample_tasks(fold_in(key, p))``,
    concatenated along the task axis.

    With P processes, :func:`minimaml.train.optimize` wraps the sampler it is given
    (one process's share) as ``TaskShares(sampler, P)``, so the meta-batch is P times
    the sampler's and process p's devices hold — and, with a share that divides by
    their count, draw — the tasks of ``fold_in(key, p)``. In a single process the same
    wrapper gives the same global meta-batch (how the two-process run is checked).
    """
    sample_tasks: SampleTasks
    shares: int

    def __post_init__(self):
        leaves = jax.tree.leaves(self.sample_tasks)
        if len(leaves) == 1 and leaves[0] is self.sample_tasks:   # a plain function
            object.__setattr__(self, "sample_tasks", jax.tree_util.Partial(self.sample_tasks))

    def __call__(self, key: jax.Array) -> tuple[Batch, Batch]:
        batches = jax.vmap(self.sample_tasks)(_fold_in_each(key, self.shares))
        return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), batches)


ENVIRONMENT = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
"""Where :func:`initialize_distributed` looks for what its arguments leave out."""


class NotGiven(ValueError):
    """``missing`` (names of :func:`initialize_distributed`'s arguments) were not given and
    could not be found in the environment either."""

    def __init__(self, missing: list[str]):
        self.missing = missing
        named = " and ".join([", ".join(missing[:-1]), missing[-1]] if missing[:-1] else missing)
        super().__init__(f"{named} not given: give coordinator, processes and process_id, "
                         f"or set ${', $'.join(ENVIRONMENT)}")


def initialize_distributed(coordinator: str | None = None, processes: int | None = None,
                           process_id: int | None = None, timeout: float = 60.0,
                           exit_message: str | None = None) -> None:
    """Join a multi-process run (``jax.distributed.initialize``), failing within ``timeout``.

    Call it before any other JAX computation, in every process. What the arguments
    leave out comes from ``$JAX_COORDINATOR_ADDRESS``, ``$JAX_NUM_PROCESSES``,
    ``$JAX_PROCESS_ID``, then JAX's own cluster detection (SLURM, Open MPI, ...).

    Args:
      coordinator: ``host:port`` of process 0, which serves the coordination there.
      processes: how many processes take part.
      process_id: this process's number, 0..processes-1.
      timeout: seconds to wait for the coordinator (and for the others to join).
      exit_message: for command lines: a process whose others have not all joined
        ``timeout`` s into ``jax.distributed.initialize`` prints this line on stderr
        and exits with status 2, instead of JAX aborting it with a stack trace.

    Raises:
      ValueError: a bad argument, or the coordinator not reachable within ``timeout``
        (checked with a plain TCP connection first, since JAX itself aborts the process
        with a stack trace then). Once it is reachable, a process that never joins
        makes JAX abort every process after ``timeout`` (JAX's own message; see
        ``exit_message``). :class:`NotGiven` when nothing says where to meet.
    """
    coordinator = coordinator or os.environ.get(ENVIRONMENT[0]) or None
    processes = _from_environment(processes, "processes", ENVIRONMENT[1], 1)
    process_id = _from_environment(process_id, "process_id", ENVIRONMENT[2], 0)
    timeout = check_number(timeout, "timeout", 1)
    if None not in (coordinator, processes, process_id):
        if process_id >= processes:
            raise ArgumentError("process_id", f"in 0..{processes - 1} (processes="
                                f"{processes})", process_id)
        host, port = _split_address(coordinator)
        if process_id == 0:
            _check_can_serve(host, port, coordinator, timeout)
        else:
            _wait_for_coordinator(host, port, coordinator, timeout)
    missing = [name for name, value in (("coordinator", coordinator), ("processes", processes),
                                        ("process_id", process_id)) if value is None]
    watchdog = None
    if exit_message is not None:     # JAX's own limit comes later: this one speaks first
        watchdog = threading.Timer(timeout, _exit, (exit_message,))
        watchdog.daemon = True
        watchdog.start()
    try:
        jax.distributed.initialize(coordinator, processes, process_id,
                                   initialization_timeout=max(1, round(timeout))
                                   + (10 if watchdog else 0))
    except ValueError:    # nor could JAX's cluster detection tell what was left out
        if not missing:
            raise
        raise NotGiven(missing) from None
    finally:
        if watchdog is not None:
            watchdog.cancel()


def _exit(message):
    print(message, file=sys.stderr, flush=True)
    os._exit(2)


def _from_environment(value, name, variable, low):
    if value is None and os.environ.get(variable):
        value = os.environ[variable]
        try:
            value = int(value)
        except ValueError:
            raise ValueError(f"{name} (${variable}) must be an integer >= {low}; got "
                             f"{value!r}") from None
    return None if value is None else check_int(value, name, low)


def _split_address(address):
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ArgumentError("coordinator", "host:port (e.g. 127.0.0.1:1234)", address)
    return host.strip("[]"), int(port)


def _check_can_serve(host, port, address, timeout):
    # Process 0 serves the coordination on every interface at that port (as JAX does),
    # and must reach itself at the address the others are given.
    dualstack = socket.has_dualstack_ipv6()
    try:
        server = socket.create_server(("", port), dualstack_ipv6=dualstack,
                                      family=socket.AF_INET6 if dualstack else socket.AF_INET)
    except OSError as err:
        raise ValueError(f"coordinator {address}: process 0 cannot listen on port {port} "
                         f"({err.strerror or err}); give a free port") from None
    with server:
        try:
            socket.create_connection((host, port), timeout=min(10.0, timeout)).close()
        except OSError:
            raise ValueError(f"coordinator {address} is not reachable from process 0, which "
                             f"serves the coordination: give an address of this host") from None


def _wait_for_coordinator(host, port, address, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(5.0, timeout)):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise ValueError(f"coordinator {address} did not answer within {timeout:g} s "
                                 f"(is process 0 running there?)") from None
            time.sleep(0.5)
