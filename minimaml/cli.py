"""What the command lines share: flags defined once, as a table, and one way of failing.

A benchmark's command line is a list of :class:`Flag` (each names the ``Config`` field it
sets) and a ``body(args)`` that builds the config and runs; :meth:`CommandLine.main`
turns every error a user can meet into one line on stderr and an exit status:

- 0 done; 2 bad input (a flag, the data, a busy --out, too large) or diverged training;
- 1 the machine refused (disk full, permission denied, out of memory);
- 130 interrupted by Ctrl-C (the line says what was saved and where).

The checks themselves live in the configs and the library, which name their fields
(``checkpoint_seconds``); the messages are said again here in terms of the flags the
user typed (``--checkpoint-minutes ... got -5``).
"""
import argparse
import dataclasses
import errno
import os
import re
import sys
import warnings
from typing import Any, Callable, Sequence

import jax

from .checks import ArgumentError, check_int, check_number
from .runs import Interrupted
from .train import TrainingDiverged

EXIT_BAD_INPUT, EXIT_SYSTEM, EXIT_INTERRUPTED = 2, 1, 130


@dataclasses.dataclass(frozen=True)
class Flag:
    """One command-line flag.

    ``type`` parses its text (None: a switch, False unless given); ``field`` is the
    ``Config`` field it sets (default: the flag's name with underscores), converted by
    ``to_field`` (e.g. minutes to seconds); ``in_config=False`` for flags the command
    uses itself (``--out``). ``default`` None leaves the config's default.
    ``repeat``: the flag may be given several times; the field gets the values as a tuple.
    """
    name: str
    type: Callable[[str], Any] | None
    help: str = ""
    field: str | None = None
    to_field: Callable[[Any], Any] | None = None
    short: str | None = None
    default: Any = None
    in_config: bool = True
    repeat: bool = False

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")

    @property
    def target(self) -> str:
        return self.field or self.dest


class UsageError(ValueError):
    """argparse's complaint (an unknown flag, a value that does not parse)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):   # one line instead of usage + message + exit
        raise UsageError(f"{message} (see {self.prog} --help)")


def _parse_with(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` for argparse: a ValueError from a parser of our own keeps its message
    (argparse would print "invalid parse_option value"); int and float keep argparse's."""
    if parse in (int, float, str):
        return parse

    def parse_flag(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return parse_flag


class CommandLine:
    """A command line made of ``flags``; see :meth:`main`."""

    def __init__(self, prog: str, description: str, flags: Sequence[Flag]):
        self.prog, self.description, self.flags = prog, description, tuple(flags)
        self._by_target = {flag.target: flag for flag in self.flags}

    def parser(self) -> argparse.ArgumentParser:
        p = _Parser(prog=self.prog, description=self.description)
        for flag in self.flags:
            names = [flag.name] + ([flag.short] if flag.short else [])
            if flag.type is None:
                p.add_argument(*names, action="store_true", help=flag.help)
            elif flag.repeat:
                p.add_argument(*names, type=_parse_with(flag.type), action="append",
                               help=flag.help)
            else:
                p.add_argument(*names, type=_parse_with(flag.type), default=flag.default,
                               help=flag.help)
        return p

    def parse(self, argv: list[str] | None = None) -> argparse.Namespace:
        return self.parser().parse_args(argv)

    def config_fields(self, args: argparse.Namespace) -> dict[str, Any]:
        """``{field: value}`` of the config flags given (switches only when set)."""
        fields = {}
        for flag in self.flags:
            value = getattr(args, flag.dest)
            if flag.in_config and value is not None and value is not False:
                value = tuple(value) if flag.repeat else value
                fields[flag.target] = flag.to_field(value) if flag.to_field else value
        return fields

    def explain(self, err: Exception, args: argparse.Namespace | None) -> str:
        """``err``'s message in terms of the flags: an argument's name becomes its flag,
        and a converted value (seconds) the value the user typed (minutes)."""
        if isinstance(err, ArgumentError) and err.name in self._by_target:
            flag = self._by_target[err.name]
            value = getattr(args, flag.dest) if (args is not None and flag.to_field) \
                else err.value
            message = f"{flag.name} must be {err.allowed}; got {value!r}{err.note}"
        else:
            message = str(err)
        return self._name_flags(message)

    def _name_flags(self, message: str) -> str:
        # Names with an underscore (``eval_tasks``), as whole words: not inside paths,
        # other names or flags; plain words ("ways", "data") may be prose.
        for target, flag in self._by_target.items():
            if "_" not in target:
                continue
            message = re.sub(rf"(?<![\w./-]){re.escape(target)}(?![\w/-])", flag.name,
                             message)
        return message

    def main(self, body: Callable[[argparse.Namespace], int],
             argv: list[str] | None = None) -> int:
        """Parse ``argv``, run ``body(args)`` and return its exit status; every error a
        user can meet is printed as one line (``error: ...``) with the status above."""
        args = None
        with warnings.catch_warnings():
            previous = warnings.formatwarning
            warnings.formatwarning = lambda message, *rest: f"warning: {message}\n"
            try:
                args = self.parse(argv)
                return body(args)
            except TrainingDiverged as err:
                return _fail(f"{err}; try a smaller learning rate (--inner-lr or --meta-lr)",
                             EXIT_BAD_INPUT)
            except Interrupted as err:
                return _fail(f"interrupted: {err}", EXIT_INTERRUPTED)
            except KeyboardInterrupt:
                return _fail("interrupted (Ctrl-C); nothing more was saved", EXIT_INTERRUPTED)
            except MemoryError:
                return _fail("out of memory; try smaller sizes (see --help), or another "
                             "machine", EXIT_SYSTEM)
            except (ValueError, FileNotFoundError) as err:
                return _fail(self.explain(err, args), EXIT_BAD_INPUT)
            except OSError as err:
                return _fail(describe_os_error(err), EXIT_SYSTEM)
            except Exception as err:
                if type(err).__name__ in ("JaxRuntimeError", "XlaRuntimeError") \
                        and "RESOURCE_EXHAUSTED" in str(err):
                    return _fail(f"the device ran out of memory ({_first_line(err)}); try "
                                 f"smaller sizes, or --memory-limit-gb lower than the "
                                 f"device's memory so the estimate refuses such runs",
                                 EXIT_SYSTEM)
                raise
            finally:
                warnings.formatwarning = previous


def run_flags(what: str = "a run") -> tuple[Flag, ...]:
    """The flags every command takes: a memory limit for ``what`` and no progress bars."""
    return (Flag("--memory-limit-gb", float, f"refuse {what} whose largest arrays would "
                 "need more (default: the device's memory)", in_config=False),
            Flag("--no-progress", None, "no progress bars", in_config=False))


DEVICE_FLAGS = (
    Flag("--devices", int, "split each meta-batch's tasks, and the meta-test's, across this "
         "many devices (of all processes together); on a CPU these are XLA host devices, at "
         "most one per core (default: one device, no split)", in_config=False),
    Flag("--distributed", None, "join a multi-process run (jax.distributed): run the same "
         "command in every process, each with its --process-id; each process writes its own "
         "--out. What --coordinator, --processes and --process-id leave out comes from "
         "$JAX_COORDINATOR_ADDRESS, $JAX_NUM_PROCESSES, $JAX_PROCESS_ID or the cluster "
         "(SLURM, Open MPI)", in_config=False),
    Flag("--coordinator", str, "host:port of process 0, which coordinates (with "
         "--distributed)", in_config=False),
    Flag("--processes", int, "how many processes take part (with --distributed)",
         in_config=False),
    Flag("--process-id", int, "this process's number, 0..processes-1 (with --distributed)",
         in_config=False),
    Flag("--coordinator-timeout", float, "seconds to wait for the coordinator and the other "
         "processes (with --distributed; default: 60)", default=60.0, in_config=False),
)
"""The flags of :func:`use_devices`, shared by the command lines."""


def use_devices(args: argparse.Namespace, meta_batch: int) -> int | None:
    """Set up the devices the flags of :data:`DEVICE_FLAGS` ask for, before any other JAX
    call: XLA host devices on a CPU, then ``jax.distributed`` with ``--distributed``.

    Every value is checked first (one error naming the flag): ``--devices`` from 1 to the
    devices there are (on a CPU, one host device per core, or ``$JAX_NUM_CPU_DEVICES``
    where set), a multiple of the processes; a ``--meta-batch`` each process can draw an
    equal share of; a coordinator that answers within ``--coordinator-timeout``. Returns the ``devices=`` argument of the library
    (None: no split in a single process, every device of every process with several).
    """
    from . import devices as device_setup
    count = None if args.devices is None else check_int(args.devices, "devices", 1)
    timeout = check_number(args.coordinator_timeout, "coordinator_timeout", 1)
    given = [f.name for f in DEVICE_FLAGS[2:5] if getattr(args, f.dest) is not None]
    if given and not args.distributed:
        raise ValueError(f"{' and '.join(given)} {'go' if given[1:] else 'goes'} with "
                         f"--distributed; add it to join a multi-process run")
    processes = 1
    if args.distributed:
        from_environment = os.environ.get(device_setup.ENVIRONMENT[1], "")
        processes = check_int(args.processes if args.processes is not None else
                              int(from_environment) if from_environment.isdigit() else 1,
                              "processes", 1)
        if meta_batch % processes:
            raise ArgumentError("meta_batch", f"a multiple of the processes ({processes}): "
                                f"each process draws an equal share of the tasks", meta_batch)
        if count is not None and count % processes:
            raise ArgumentError("devices", f"a multiple of the processes ({processes}): each "
                                f"process gives the same number of devices", count)
    host_devices = os.environ.get("JAX_NUM_CPU_DEVICES")    # the user's own choice
    if count is not None and not host_devices:
        device_setup.use_cpu_devices(min(count // processes, _cpu_cores()))
    if args.distributed:
        try:
            device_setup.initialize_distributed(
                args.coordinator, args.processes, args.process_id, timeout,
                exit_message=f"error: --distributed: the processes did not all join "
                             f"within {timeout:g} s (--coordinator-timeout); start them all, "
                             f"each with its --process-id")
        except device_setup.NotGiven as err:
            flags = [f"--{name.replace('_', '-')}" for name in err.missing]
            raise ValueError(f"--distributed: {', '.join(flags)} not given: give them, or set "
                             f"${', $'.join(device_setup.ENVIRONMENT)}") from None
        except ArgumentError:
            raise
        except ValueError as err:
            raise ValueError(f"--distributed: {err}") from None
    available = len(jax.devices())
    if count is not None and count > available:
        where = f"the {jax.default_backend()} devices JAX started with"
        if jax.default_backend() == "cpu" and host_devices:
            where = f"$JAX_NUM_CPU_DEVICES={host_devices} host devices"
        elif jax.default_backend() == "cpu" and available == _cpu_cores():
            where = f"this machine's {available} CPU cores, one host device each"
        raise ArgumentError("devices", f"an integer in 1..{available} ({where})", count)
    return count


def _cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:    # not on Linux
        return os.cpu_count() or 1


def describe_os_error(err: OSError) -> str:
    """One line for an error the operating system reported, naming the file."""
    where = f"{err.filename}: " if err.filename else ""
    reason = err.strerror or _first_line(err)
    hint = {errno.ENOSPC: "; free some space, or write elsewhere (--out)",
            errno.EDQUOT: "; free some space, or write elsewhere (--out)",
            errno.EROFS: "; choose a place you may write to"}.get(err.errno, "")
    return f"{where}{reason}{hint}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _fail(message: str, status: int) -> int:
    print(f"error: {' '.join(message.split())}" if status != EXIT_INTERRUPTED
          else ' '.join(message.split()), file=sys.stderr, flush=True)
    return status
