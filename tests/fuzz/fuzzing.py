"""Shared machinery of the fuzz suite (issue 29): hypothesis profiles, byte mutations of valid seeds, a
per-example time limit and the one property every reader is held to.

The property: reading any bytes gives a parsed value, or one of our error types (``SiamrnError``) or an
``OSError``, whose one-line message names the file; never another exception, never a hang.

Every fuzz test exists twice (``twin``): a bounded version in the normal suite (``siamrn-fuzz-bounded``:
a few derandomised examples, so CI is deterministic and fast) and a long version marked ``fuzz``
(``siamrn-fuzz-long``: ``SIAMRN_FUZZ_EXAMPLES`` examples each, default 500, random seeds), run with
``pytest -m fuzz tests/fuzz``. Properties whose examples cost a second or more (a model's shapes evaluated,
a command run) use ``siamrn-fuzz-few`` (5) and ``siamrn-fuzz-some`` (a fifth of the long count).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siamrn_jax.errors import SiamrnError, one_line

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
# No example database: the suite leaves no .hypothesis folder behind in the checkout.
settings.register_profile(
    "siamrn-fuzz-bounded",
    max_examples=int(os.environ.get("SIAMRN_FUZZ_BOUNDED", "12")),
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=_QUIET,
)
settings.register_profile(
    "siamrn-fuzz-long",
    max_examples=int(os.environ.get("SIAMRN_FUZZ_EXAMPLES", "500")),
    deadline=None,
    database=None,
    suppress_health_check=_QUIET,
)
# The bounded twins of properties whose examples cost a second or more (a model's shapes evaluated, a
# command run): fewer examples, so the whole fuzz folder stays well inside CI's budget.
settings.register_profile(
    "siamrn-fuzz-few",
    settings.get_profile("siamrn-fuzz-bounded"),
    max_examples=int(os.environ.get("SIAMRN_FUZZ_FEW", "5")),
)
BOUNDED = settings.get_profile("siamrn-fuzz-bounded")
FEW = settings.get_profile("siamrn-fuzz-few")
LONG = settings.get_profile("siamrn-fuzz-long")
# The long twins of those slow properties: a fifth of the examples (100 by default).
settings.register_profile("siamrn-fuzz-some", LONG, max_examples=max(LONG.max_examples // 5, 10))
SOME = settings.get_profile("siamrn-fuzz-some")
# Seconds one example may take before it counts as a hang (the slowest readers decode a short video).
TIME_LIMIT = 20.0


def twin(*strategies: st.SearchStrategy, bounded: settings = BOUNDED, long: settings = LONG):
    """``(test, test_long)`` from one property: the bounded test runs in the normal suite, the long one
    only with ``-m fuzz``. Use as ``test_x, test_x_long = twin(strategy)(check_x)``."""

    def wrap(fn: Callable[..., None]):
        short = settings(bounded)(given(*strategies)(fn))
        longer = pytest.mark.fuzz(settings(long)(given(*strategies)(fn)))
        return short, longer

    return wrap


class Hang(BaseException):
    """An example ran past ``TIME_LIMIT`` (a BaseException, so no ``except Exception`` swallows it)."""


@contextlib.contextmanager
def within(seconds: float = TIME_LIMIT) -> Iterator[None]:
    """Raises ``Hang`` in the test if the block runs longer than ``seconds`` (SIGALRM: main thread only,
    where pytest and its xdist workers run tests; elsewhere the block runs unguarded)."""
    # SIAMRN_FUZZ_NO_ALARM: under atheris (atheris_run), whose libFuzzer owns SIGALRM and guards hangs.
    if threading.current_thread() is not threading.main_thread() or os.environ.get("SIAMRN_FUZZ_NO_ALARM"):
        yield
        return

    def alarm(*_):
        raise Hang(f"example ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def outcome(read: Callable[[], Any], names: Sequence[str | os.PathLike], seconds: float = TIME_LIMIT) -> Any:
    """``read()``'s value, or None when it raised one of our errors or an ``OSError`` whose one-line
    message names one of ``names`` (files or folders; a name matches as its string or its last part).
    Any other exception, or a run past ``seconds``, fails the example."""
    try:
        with within(seconds):
            return read()
    except (SiamrnError, OSError) as e:
        line = one_line(e)
        wanted = [str(n) for n in names] + [Path(n).name for n in names]
        assert any(w and w in line for w in wanted), f"{type(e).__name__} names none of {wanted}: {line}"
        return None


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A fresh temporary folder per example (pytest's tmp_path is per test, not per example)."""
    with tempfile.TemporaryDirectory(prefix="siamrn-fuzz-") as d:
        yield Path(d)


# --- mutations -------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Mutation:
    """One edit of a seed file, kept as a recipe so a failing example prints short (seeds can be MBs).

    kind: "same", "cut" (keep ``n`` bytes), "flip" (XOR ``edits`` (position, mask)), "splice" (at ``n``
    cut ``cut`` bytes and insert ``data``) or "replace" (by ``data``).
    """

    kind: str
    n: int = 0
    cut: int = 0
    data: bytes = b""
    edits: tuple[tuple[int, int], ...] = ()

    def __call__(self, seed: bytes) -> bytes:
        if self.kind == "cut":
            return seed[: self.n]
        if self.kind == "flip":
            out = bytearray(seed)
            for pos, mask in self.edits:
                if out:
                    out[pos % len(out)] ^= mask
            return bytes(out)
        if self.kind == "splice":
            pos = self.n % (len(seed) + 1)
            return seed[:pos] + self.data + seed[pos + self.cut :]
        return self.data if self.kind == "replace" else seed


def mutations(size: int, max_size: int = 4096) -> st.SearchStrategy[Mutation]:
    """Edits of a valid ``size``-byte file: kept, cut short (emptied too), bits flipped, bytes spliced in
    or cut out, or replaced by random bytes (a valid file must read)."""
    n = max(size, 1)
    edits = st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 255)), min_size=1, max_size=8)
    return st.one_of(
        st.just(Mutation("same")),
        st.integers(0, size).map(lambda k: Mutation("cut", n=k)),
        edits.map(lambda e: Mutation("flip", edits=tuple(e))),
        st.builds(Mutation, st.just("splice"), st.integers(0, n), st.integers(0, 16), st.binary(max_size=32)),
        st.binary(max_size=max_size).map(lambda b: Mutation("replace", data=b)),
    )


# Characters the text parsers split and convert: separators, signs, exponents, NaN / inf spellings, line
# ends of every platform, and non-ASCII digits and spaces that str.isdigit / float treat specially.
TEXT_ALPHABET = list("0123456789,. \t\n\r-+eE") + ["nan", "NaN", "inf", "1e999", "\xa0", "\u00b2", "\u0661"]
TEXT_ALPHABET += ["99999999999999999999", "\x0b", "\x0c", "\x00"]  # past int64; vertical tab, form feed


def text_mutations(seed: str) -> st.SearchStrategy[Mutation]:
    """``mutations`` of a text file's UTF-8 bytes, plus text drawn from ``TEXT_ALPHABET`` and any text."""
    return st.one_of(
        mutations(len(seed.encode())),
        st.lists(st.sampled_from(TEXT_ALPHABET), max_size=80).map(
            lambda t: Mutation("replace", data="".join(t).encode())
        ),
        st.text(max_size=200).map(lambda t: Mutation("replace", data=t.encode("utf-8", "surrogatepass"))),
    )


def _json_containers(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=12),
    _json_containers,
    max_leaves=12,
)


def json_mutations(seed: Any) -> st.SearchStrategy[Mutation]:
    """Edits of ``json.dumps(seed, indent=2)``: byte ``mutations`` of it, or ``seed`` with one value changed
    (``json_edits``) as the whole new file."""
    size = len(json.dumps(seed, indent=2).encode())
    edited = json_edits(seed).map(lambda d: Mutation("replace", data=json.dumps(d).encode()))
    return st.one_of(mutations(size), edited)


def json_edits(seed: dict) -> st.SearchStrategy[dict]:
    """``seed`` (a valid JSON object) with one key, at any depth, set to any JSON value or removed."""
    paths = list(_paths(seed))

    def edit(path: tuple, value: Any, remove: bool) -> dict:
        import copy

        out = copy.deepcopy(seed)
        node = out
        for k in path[:-1]:
            node = node[k]
        if remove and isinstance(node, dict):
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
        return out

    return st.builds(edit, st.sampled_from(paths), JSON_VALUES, st.booleans())


def _paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        yield (*prefix, k)
        yield from _paths(v, (*prefix, k))
