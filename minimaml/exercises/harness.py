"""What every exercise check shares: run the reader's function on fresh inputs, compare, explain.

An :class:`Exercise` holds a reference solution, a generator of fresh inputs, and the
usual mistakes (each a wrong function and the hint it earns). Calling it on the reader's
function prints one line — ``correct``, ``not yet`` (the stub is untouched) or what
differs — and never lets a traceback of the reader's code through. ``grade`` returns
the same verdict as a :class:`Result` without printing (the tests use it).
"""
import contextlib
from typing import Any, Callable, NamedTuple, Sequence

import jax
import numpy as np

CORRECT, NOT_YET, WRONG = "correct", "not yet", "wrong"


class Result(NamedTuple):
    """A verdict: ``status`` is "correct", "not yet" or "wrong"; ``message`` says why."""
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == CORRECT


class Case(NamedTuple):
    """One set of fresh inputs: the positional arguments the reader's function gets."""
    args: tuple
    label: str = ""


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


def _describe(tree: Any) -> str:
    text = str(jax.tree.structure(tree))
    return text if len(text) <= 160 else text[:157] + "..."


def _as_numpy(tree: Any) -> Any:
    return jax.tree.map(lambda leaf: np.asarray(leaf), tree)


def tree_difference(got: Any, want: Any, rtol: float = 1e-4, atol: float = 1e-6,
                    name: str = "your result") -> str | None:
    """None when ``got`` matches ``want`` (same pytree structure, shapes and values within
    tolerance), else one sentence saying where and how they differ."""
    try:
        got = _as_numpy(got)
    except Exception as err:          # e.g. a list of strings, an object numpy cannot read
        return f"{name} is not numbers ({_first_line(err)})"
    want = _as_numpy(want)
    if jax.tree.structure(got) != jax.tree.structure(want):
        return f"{name} has the structure {_describe(got)}; expected {_describe(want)}"
    paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(want)[0]]
    for path, g, w in zip(paths, jax.tree.leaves(got), jax.tree.leaves(want)):
        where = f"{name}{path}"
        if g.shape != w.shape:
            return f"{where} has shape {g.shape}; expected {w.shape}"
        if not np.issubdtype(g.dtype, np.number) and g.dtype != np.bool_:
            return f"{where} holds {g.dtype} values, not numbers"
        if not np.all(np.isfinite(g)):
            return f"{where} holds NaN or infinite values"
        g, w = g.astype(np.float64), w.astype(np.float64)
        scale = max(1.0, float(np.max(np.abs(w)))) if w.size else 1.0
        if not np.allclose(g, w, rtol=rtol, atol=atol * scale):
            worst = np.unravel_index(np.argmax(np.abs(g - w)), w.shape) if w.ndim else ()
            return (f"{where} differs: at index {tuple(int(i) for i in worst)} it is "
                    f"{g[worst]:.6g}, expected {w[worst]:.6g}")
    return None


class Exercise:
    """A self-checking exercise.

    Args:
      function_name: the name the chapter's stub uses (shown in messages).
      reference: the correct function; called with a case's arguments.
      cases: ``rng -> list of Case``, fresh inputs for every check.
      mistakes: ``(wrong_function, hint)`` pairs: when the reader's result matches a
        wrong function's result, the hint is the message.
      compare: ``(got, want) -> None | str``; default :func:`tree_difference`.
      accept: further correct functions (e.g. another valid convention), any of which
        may match instead of ``reference``.
      extra_check: ``(candidate, cases) -> None | str``, run after the values matched
        (e.g. "it must not recompile for a new α").
    """

    def __init__(self, function_name: str, reference: Callable, cases: Callable,
                 mistakes: Sequence[tuple[Callable, str]] = (),
                 compare: Callable[[Any, Any], str | None] | None = None,
                 accept: Sequence[Callable] = (),
                 extra_check: Callable | None = None):
        self.function_name = function_name
        self.reference, self.cases, self.mistakes = reference, cases, tuple(mistakes)
        self.compare = compare or tree_difference
        self.accept, self.extra_check = tuple(accept), extra_check
        self.last: Result | None = None

    def grade(self, candidate: Callable, seed: int | None = None) -> Result:
        """The verdict on ``candidate`` (prints nothing; also kept in ``self.last``)."""
        self.last = self._grade(candidate, seed)
        return self.last

    def __call__(self, candidate: Callable, seed: int | None = None) -> None:
        result = self.grade(candidate, seed)
        mark = {CORRECT: "✓", NOT_YET: "…"}.get(result.status, "✗")
        print(f"{mark} {result.status}: {result.message}")

    def _grade(self, candidate, seed):
        name = self.function_name
        if not callable(candidate):
            return Result(WRONG, f"pass the function itself, check_…({name}), not "
                                 f"{type(candidate).__name__}")
        cases = self.cases(np.random.default_rng(seed))
        for case in cases:
            try:
                with _quiet():
                    got = candidate(*case.args)
            except NotImplementedError:
                return Result(NOT_YET, f"{name} still raises NotImplementedError — write "
                                       f"its body and run the cell again")
            except Exception as err:
                return Result(WRONG, f"{name} raised {_first_line(err)}"
                                     f"{' (' + case.label + ')' if case.label else ''}")
            if got is None:
                return Result(WRONG, f"{name} returned None — did its last line forget "
                                     f"`return`?")
            verdict = self._judge(got, case)
            if verdict is not None:
                where = f" ({case.label})" if case.label else ""
                return Result(WRONG, f"{verdict}{where}")
        if self.extra_check is not None:
            try:
                problem = self.extra_check(candidate, cases)
            except Exception as err:
                problem = f"{name} raised {_first_line(err)}"
            if problem:
                return Result(WRONG, problem)
        return Result(CORRECT, f"{name} matches the reference on {len(cases)} fresh "
                               f"input{'s' * (len(cases) > 1)}")

    def _judge(self, got, case):
        want = self.reference(*case.args)
        difference = self.compare(got, want)
        if difference is None:
            return None
        for alternative in self.accept:
            if self.compare(got, alternative(*case.args)) is None:
                return None
        for wrong, hint in self.mistakes:
            try:
                if self.compare(got, wrong(*case.args)) is None:
                    return hint
            except Exception:
                continue
        return difference


@contextlib.contextmanager
def _quiet():
    """Let the reader's prints through but not JAX's warnings about them."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def random_mlp(rng: np.random.Generator, sizes: Sequence[int], scale: float = 0.5) -> list:
    """MLP parameters (``nets.mlp_init`` layout) with weights of std ``scale``: big enough
    that second derivatives matter, unlike the paper's tiny initialisation."""
    import jax.numpy as jnp
    return [{"w": jnp.asarray(rng.normal(0, scale, (a, b)), jnp.float32),
             "b": jnp.asarray(rng.normal(0, scale, (b,)), jnp.float32)}
            for a, b in zip(sizes[:-1], sizes[1:])]


def random_like(rng: np.random.Generator, tree: Any) -> Any:
    """A pytree of standard-normal float32 arrays shaped like ``tree``."""
    import jax.numpy as jnp
    return jax.tree.map(lambda leaf: jnp.asarray(rng.normal(size=np.shape(leaf)), jnp.float32),
                        tree)


def sine_support_query(rng: np.random.Generator, num_tasks: int | None, shots: int,
                       queries: int) -> tuple[Any, Any]:
    """Fresh sinusoid ``(support, query)`` batches; ``num_tasks=None`` gives one task."""
    from ..sinusoid import sample_tasks
    tasks = sample_tasks(jax.random.key(int(rng.integers(2**31))), num_tasks or 1, shots, queries)
    if num_tasks is None:
        tasks = jax.tree.map(lambda a: a[0], tasks)
    return tasks.support, tasks.query
