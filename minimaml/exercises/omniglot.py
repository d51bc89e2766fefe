"""Chapter 6's exercise: the N-way label permutation (needs no Omniglot data)."""
import jax
import numpy as np

from .harness import Case, Exercise


def _label_cases(rng):
    cases = []
    for ways, shots, queries in ((5, 1, 3), (20, 5, 2)):
        support_y = np.repeat(np.arange(ways, dtype=np.int32), shots)
        query_y = np.repeat(np.arange(ways, dtype=np.int32), queries)
        key = jax.random.key(int(rng.integers(2**31)))
        cases.append(Case((key, support_y, query_y, ways), f"{ways}-way, K={shots}"))
    return cases


def _mapping(before, after, ways):
    """The relabelling before -> after as an array π (π[c] = new label of class c), or a
    message saying why there is none."""
    after = np.asarray(after)
    if after.shape != before.shape:
        return f"shape {after.shape}, expected {before.shape}"
    if not np.issubdtype(after.dtype, np.integer):
        return f"labels must be integers; got {after.dtype}"
    pi = np.full(ways, -1)
    for old, new in zip(before, after):
        if pi[old] not in (-1, new):
            return f"two drawings of class {old} got different labels ({pi[old]} and {new})"
        pi[old] = new
    return pi


def _same_permutation(got, case_args):
    support_y, query_y, ways = case_args
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "return a pair (new support labels, new query labels)"
    pis = [_mapping(before, after, ways) for before, after in zip((support_y, query_y), got)]
    for name, pi in zip(("support", "query"), pis):
        if isinstance(pi, str):
            return f"the {name} labels: {pi}"
    if sorted(pis[0].tolist()) != list(range(ways)):
        return f"the new labels are not a permutation of 0..{ways - 1}: {pis[0].tolist()}"
    if not np.array_equal(pis[0], pis[1]):
        return ("support and query were relabelled with different permutations: a label "
                "must name the same character in both sets of a task")
    return None


def _random_and_repeatable(candidate, cases):
    key, support_y, query_y, ways = cases[0].args
    again = candidate(key, support_y, query_y, ways)
    if not np.array_equal(np.asarray(again[0]), np.asarray(candidate(key, support_y, query_y, ways)[0])):
        return "the same key gave two different permutations: draw it from `key` only"
    seen, first_label = set(), set()
    for i in range(60):
        new_support, _ = candidate(jax.random.fold_in(key, i), support_y, query_y, ways)
        pi = _mapping(support_y, new_support, ways)
        if isinstance(pi, str):
            return f"with another key, the support labels: {pi}"
        seen.add(tuple(pi.tolist()))
        first_label.add(int(pi[0]))
    if len(seen) == 1:
        return "every key gave the same labels: permute them with jax.random.permutation(key, ways)"
    if len(first_label) < ways:
        return (f"over 60 keys class 0 only ever got labels {sorted(first_label)}: every "
                f"label should be possible")
    return None


check_permute_labels = Exercise(
    "permute_labels", lambda key, support_y, query_y, ways: (support_y, query_y, ways),
    _label_cases, compare=_same_permutation, extra_check=_random_and_repeatable)
