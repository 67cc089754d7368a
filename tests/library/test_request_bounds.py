"""Bounded work per request: the typo fixer's word bound, the request-size limit in the search API and the CLIs.

The work is asserted (deletion keys made, peak Python memory traced during one search), never a wall clock.
"""

from __future__ import annotations

import io
import random
import string
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from library_helpers import make_draft, run_cli

from graph.cli import main as graph_main
from sea.settings import Settings
from tools_library.embeddings import MiniLMEmbeddings
from tools_library.library import ToolLibrary
from tools_library.retrieval import (
    MAX_RESULTS,
    MAX_WORD_LENGTH,
    RequestTooLongError,
    SearchQueryError,
    TypoCorrector,
    vocabulary_of,
)

LIMIT = Settings().max_request_chars
MIB = 1024 * 1024


def letters(count: int, seed: int = 0) -> str:
    """One word of `count` random letters (no repeats to collapse its deletion keys)."""
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(count))


def words(chars: int, seed: int = 1) -> str:
    """`chars` characters of pseudo-words, each of which the typo fixer has to look at."""
    rng = random.Random(seed)
    text = ""
    while len(text) < chars:
        text += "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 12))) + " "
    return text[:chars].rstrip().ljust(chars, "x")


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbeddings:
    return MiniLMEmbeddings()


def open_library(home: Path, minilm: MiniLMEmbeddings, **settings: int) -> ToolLibrary:
    """A library of three tools written through the store (no sandbox) and indexed."""
    library = ToolLibrary.open(Settings(home=home, **settings), embeddings=minilm)
    library.store.add_version(make_draft("reverse_string", params="text: str", returns="str", body="return text[::-1]",
                                         description="Reverse the characters of a string."))
    library.store.add_version(make_draft("count_vowels", params="text: str", returns="int", body="return 0",
                                         description="Count the vowels in a text."))
    library.store.add_version(make_draft("is_prime", params="n: int", returns="bool", body="return n > 1",
                                         description="Tell whether a whole number is prime."))
    library.sync_index()
    return library


def traced_peak(action: Callable[[], object]) -> int:
    """Peak bytes of Python allocations (numpy's included) while `action` runs."""
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_typo_fixer_skips_words_over_the_bound_and_still_fixes_real_typos() -> None:
    corrector = TypoCorrector(vocabulary_of("reverse_string count_vowels fahrenheit"))
    huge = letters(40_000)
    assert corrector.correct(huge) == huge
    assert corrector.keys_made == 0  # unbounded, this word alone made 40,001 keys of 39,999 letters each
    at_bound = letters(MAX_WORD_LENGTH, seed=3)
    corrector.correct(at_bound)
    assert corrector.keys_made == len({at_bound[:i] + at_bound[i + 1:] for i in range(MAX_WORD_LENGTH)}) + 1
    assert corrector.correct("revrse the strng, count vowles in farenheit") == (
        "reverse the string, count vowels in fahrenheit"
    )


def test_the_typo_fixers_work_on_a_request_at_the_limit_is_linear() -> None:
    corrector = TypoCorrector(vocabulary_of("reverse_string count_vowels fahrenheit"))
    request = words(LIMIT)
    corrector.correct(request)
    long_words = [w for w in request.split() if len(w) >= TypoCorrector.MIN_LENGTH]
    assert corrector.keys_made <= len(long_words) * (MAX_WORD_LENGTH + 1)
    assert corrector.keys_made <= LIMIT * 3


def test_a_vocabulary_word_over_the_bound_makes_no_deletion_keys() -> None:
    corrector = TypoCorrector([letters(40_000)])
    assert corrector._deletions == {}


@pytest.mark.parametrize(
    ("request_text", "limit"),
    [(letters(40_000), 50_000), (letters(LIMIT), LIMIT), (words(LIMIT), LIMIT)],
    ids=["40000-letter-word-limit-raised", "one-word-at-the-limit", "words-at-the-limit"],
)
def test_a_search_at_the_limit_or_with_a_40000_letter_word_stays_small(
    tmp_path: Path, minilm: MiniLMEmbeddings, request_text: str, limit: int
) -> None:
    library = open_library(tmp_path / "home", minilm, max_request_chars=limit)
    library.search("reverse a string")  # warm: caches and the ONNX session
    hits: list[object] = []
    peak = traced_peak(lambda: hits.extend(library.search(request_text, k=3)))
    assert len(hits) == 3
    # Before the word bound: 1.4 GB for the 40,000-letter word, 320 MB for one word of 20,000 (bench/RESULTS.md).
    assert peak < 40 * MIB, f"{peak / MIB:.1f} MiB"
    library.close()


def test_a_request_over_the_limit_is_refused_by_the_library_in_one_sentence(
    tmp_path: Path, minilm: MiniLMEmbeddings
) -> None:
    library = open_library(tmp_path / "home", minilm)
    generation = library.store.generation()
    with pytest.raises(RequestTooLongError) as refused:
        library.search("x" * (LIMIT + 1))
    message = str(refused.value)
    assert message == (
        f"The request is {LIMIT + 1:,} characters long, over the limit of {LIMIT:,} (SEA_MAX_REQUEST_CHARS): "
        "shorten it to the task itself."
    )
    assert isinstance(refused.value, ValueError) and "\n" not in message
    with pytest.raises(RequestTooLongError):
        library.index.search("x" * (LIMIT + 1))  # the index refuses on its own too
    assert library.search("reverse " * (LIMIT // 8))[0].name == "reverse_string"  # exactly at the limit: served
    assert len(library.index.indexed()) == 3 and library.store.generation() == generation  # nothing lost


def test_a_bad_number_of_results_is_refused(tmp_path: Path, minilm: MiniLMEmbeddings) -> None:
    library = open_library(tmp_path / "home", minilm)
    assert len(library.search("reverse", k=MAX_RESULTS)) == 3
    with pytest.raises(SearchQueryError, match=f"from 1 to {MAX_RESULTS}"):
        library.search("reverse", k=MAX_RESULTS + 1)


def test_the_library_cli_refuses_a_request_over_the_limit_with_exit_2(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ToolLibrary.open(Settings(home=home), sync_index=False).store.add_version(make_draft("add_numbers"))
    done = run_cli("search", "y" * 151, env_extra={"SEA_HOME": str(home), "SEA_MAX_REQUEST_CHARS": "150"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "error: The request is 151 characters long, over the limit of 150 (SEA_MAX_REQUEST_CHARS): "
        "shorten it to the task itself."
    )
    served = run_cli("search", "add " * 37 + "tw", env_extra={"SEA_HOME": str(home), "SEA_MAX_REQUEST_CHARS": "150"})
    assert served.returncode == 0 and "add_numbers" in served.stdout, served.stderr


def test_graph_ask_refuses_a_request_over_the_limit_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sea.settings import get_settings

    monkeypatch.setenv("SEA_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    out, err = io.StringIO(), io.StringIO()
    try:
        code = graph_main(["ask", "z" * (LIMIT + 1), "--model", "scripted:demo"], out=out, err=err)
    finally:
        get_settings.cache_clear()
    assert code == 2
    assert err.getvalue().strip() == (
        f"error: The request is {LIMIT + 1:,} characters long, over the limit of {LIMIT:,} "
        "(SEA_MAX_REQUEST_CHARS): shorten it to the task itself."
    )
    assert out.getvalue() == ""
    assert not (tmp_path / "home" / "checkpoints.sqlite").exists()  # refused before any run was stored
