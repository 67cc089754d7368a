"""The hybrid tool index (its SQLite file, or a real Chroma server) and the real embedding model, in temporary
folders."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from bench.retrieval import main as bench_main
from sea.settings import Settings
from tools_library.embeddings import MiniLMEmbeddings
from tools_library.retrieval import (
    RERANK_FEATURES,
    Calibration,
    ConversionUnits,
    IndexEntry,
    QueryLiterals,
    SignatureShape,
    ToolIndex,
    TypoCorrector,
    lexical_tokens,
    negated_words,
    parameter_names,
    rerank_features,
    vocabulary_of,
)

TOOLS = [
    ("reverse_string", "def reverse_string(text: str) -> str",
     "Return `text` with its characters in reverse order (it operates on characters, not on words)."),
    ("count_vowels", "def count_vowels(text: str) -> int",
     "Return the number of vowels (a, e, i, o, u, case-insensitive) in `text`."),
    ("celsius_to_fahrenheit", "def celsius_to_fahrenheit(celsius: float) -> float",
     "Convert a temperature from degrees Celsius to degrees Fahrenheit using F = C * 9/5 + 32."),
    ("fahrenheit_to_celsius", "def fahrenheit_to_celsius(fahrenheit: float) -> float",
     "Convert a temperature from degrees Fahrenheit to degrees Celsius using C = (F - 32) * 5/9."),
    ("kilograms_to_pounds", "def kilograms_to_pounds(kilograms: float) -> float",
     "Convert a mass in kilograms to avoirdupois pounds (lb), using 1 lb = 0.45359237 kg."),
    ("pounds_to_kilograms", "def pounds_to_kilograms(pounds: float) -> float",
     "Convert a mass in avoirdupois pounds (lb) to kilograms, using 1 lb = 0.45359237 kg."),
    ("median", "def median(values: list[float]) -> float",
     "Return the median of `values`: the middle element after sorting, or the average of the two middle "
     "elements when the count is even. Raises ValueError on an empty list."),
    ("is_leap_year", "def is_leap_year(year: int) -> bool",
     "Return True if `year` is a leap year in the Gregorian calendar."),
    ("percentage_of", "def percentage_of(percent: float, total: float) -> float",
     "Return `percent` percent of `total`, i.e. total * percent / 100 (e.g. percentage_of(20, 50) -> 10.0)."),
    ("day_of_week", "def day_of_week(date: str) -> str",
     "Return the English weekday name (e.g. 'Monday') of an ISO 'YYYY-MM-DD' date."),
]


def entry(name: str, signature: str, description: str, version: int = 1, content_hash: str = "") -> IndexEntry:
    return IndexEntry(
        name=name, version=version, signature=signature, description=description,
        content_hash=content_hash or f"{name}-v{version}",
    )


ENTRIES = [entry(*row) for row in TOOLS]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbeddings:
    return MiniLMEmbeddings()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "sea-home")


@pytest.fixture
def index(settings: Settings, minilm: MiniLMEmbeddings) -> ToolIndex:
    tool_index = ToolIndex(settings, minilm)
    tool_index.upsert(ENTRIES)
    return tool_index


def test_index_lives_under_sea_home_by_default(index: ToolIndex, settings: Settings) -> None:
    assert settings.index_dir.is_dir()
    assert any(settings.index_dir.iterdir())


def test_upsert_delete_indexed_round_trip(index: ToolIndex) -> None:
    assert index.indexed() == {e.name: e.content_hash for e in ENTRIES}
    index.delete(["median", "no_such_tool"])
    assert "median" not in index.indexed()
    assert len(index.indexed()) == len(ENTRIES) - 1
    assert all(hit.name != "median" for hit in index.search("middle value of a sorted list", k=10))
    index.clear()
    assert index.indexed() == {}
    assert index.search("reverse a string") == []


def test_upsert_replaces_a_names_entry(index: ToolIndex) -> None:
    newer = entry(*TOOLS[0], version=2, content_hash="reverse-v2")
    index.upsert([newer])
    assert index.indexed()["reverse_string"] == "reverse-v2"
    hits = index.search("reverse the characters of a string", k=10)
    assert [h.name for h in hits].count("reverse_string") == 1
    assert hits[0].name == "reverse_string" and hits[0].version == 2


def test_persisted_index_survives_reopening_with_bm25_rebuilt(
    index: ToolIndex, settings: Settings, minilm: MiniLMEmbeddings
) -> None:
    query = "Is 2024 a leap year?"
    before = index.search(query, k=3)
    reopened = ToolIndex(settings, minilm)
    assert reopened.indexed() == index.indexed()
    after = reopened.search(query, k=3)
    assert [h.name for h in after] == [h.name for h in before]
    assert after[0].name == "is_leap_year"
    assert after[0].lexical_score is not None and after[0].lexical_score > 0  # BM25 rebuilt from Chroma


def test_another_process_changes_are_seen_after_refresh(
    index: ToolIndex, settings: Settings, minilm: MiniLMEmbeddings
) -> None:
    other = ToolIndex(settings, minilm)
    other.upsert([entry("gcd", "def gcd(a: int, b: int) -> int", "Return the greatest common divisor of a and b.")])
    index.refresh()
    assert "gcd" in index.indexed()
    assert index.search("greatest common divisor of 12 and 18", k=1)[0].name == "gcd"


_OTHER_PROCESS_WRITER = """
import sys
from sea.settings import Settings
from tools_library.retrieval import IndexEntry, ToolIndex
index = ToolIndex(Settings(home=sys.argv[1]))
for i in range(int(sys.argv[2])):
    index.upsert([IndexEntry(name=f"gcd_{i}", version=1, signature=f"def gcd_{i}(a: int, b: int) -> int",
                             description=f"Return the greatest common divisor of a and b (variant {i}).",
                             content_hash=f"gcd-{i}")])
index.upsert([IndexEntry(name="median", version=2, signature="def median(values: list[float]) -> float",
                         description="Return the middle value of the sorted values.", content_hash="median-v2")])
index.delete(["is_leap_year"])
"""


def test_a_long_open_index_sees_another_processes_writes_after_refresh(index: ToolIndex, settings: Settings) -> None:
    """Embedded Chroma failed this: an open client never saw other processes' vectors ("Error finding id")."""
    index.search("warm up")
    done = subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS_WRITER, str(settings.home), "12"], capture_output=True, text=True,
        timeout=300, cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert "gcd_11" not in index.indexed()  # nothing is read until refresh
    index.refresh()
    indexed = index.indexed()
    assert {f"gcd_{i}" for i in range(12)} <= set(indexed) and "is_leap_year" not in indexed
    assert indexed["median"] == "median-v2"
    hits = index.search("greatest common divisor of 12 and 18", k=12)
    assert {h.name for h in hits} == {f"gcd_{i}" for i in range(12)}
    assert all(h.dense_score is not None and h.dense_score > 0.5 for h in hits)  # their vectors, not a fallback
    index.refresh()  # nothing moved: nothing read
    assert index.indexed() == indexed


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("can u revrse this string for me: 'racecar2024'", "reverse_string"),
        ("Find the median of 3, 1, 4, 1, 5, 9, 2.", "median"),
        ("How many kilograms is 180 lb?", "pounds_to_kilograms"),
        ("Convert 70 kg to pounds.", "kilograms_to_pounds"),
        ("My American thermometer reads 98.6°F. What's that in Celsius?", "fahrenheit_to_celsius"),
        ("how many vowles does 'onomatopoeia' have", "count_vowels"),
        ("I was born on 1990-05-17. Was that a Monday, a Tuesday, or what?", "day_of_week"),
    ],
)
def test_search_finds_the_right_tool(index: ToolIndex, query: str, expected: str) -> None:
    hits = index.search(query, k=5)
    assert hits[0].name == expected
    assert [h.rank for h in hits] == list(range(1, 6))
    assert all(a.score >= b.score for a, b in pairwise(hits))
    assert all(h.dense_score is not None and h.lexical_score is not None for h in hits)
    assert all(-1.0 <= h.dense_score <= 1.0 for h in hits)


def test_k_larger_than_the_library_returns_every_tool(index: ToolIndex) -> None:
    hits = index.search("convert a temperature", k=50)
    assert len(hits) == len(ENTRIES)
    assert {h.name for h in hits} == {e.name for e in ENTRIES}
    assert {h.name for h in hits[:2]} == {"celsius_to_fahrenheit", "fahrenheit_to_celsius"}


def test_reuse_decision_refuses_an_out_of_library_request(index: ToolIndex) -> None:
    decision = index.reuse_decision(index.search("Book me a table for two at an Italian restaurant tonight."))
    assert decision.choice is None
    assert decision.above_floor is False
    assert 0.0 <= decision.confidence <= 1.0 and decision.reason


def test_reuse_decision_reuses_a_clearly_fitting_tool(index: ToolIndex) -> None:
    decision = index.reuse_decision(index.search("Is 2024 a leap year?"))
    assert decision.choice == "is_leap_year"
    assert decision.above_floor is True
    assert decision.confidence >= index.calibration.reuse_threshold


def test_reuse_decision_on_no_hits_and_without_calibration(settings: Settings, minilm: MiniLMEmbeddings) -> None:
    empty = ToolIndex(settings, minilm)
    decision = empty.reuse_decision(empty.search("anything at all"))
    assert decision.choice is None and decision.above_floor is False
    uncalibrated = ToolIndex(settings, minilm, collection="uncalibrated", calibration=Calibration())
    uncalibrated.upsert(ENTRIES[:3])
    assert uncalibrated.reuse_decision(uncalibrated.search("reverse 'abc'")).choice is None


@pytest.mark.parametrize(("query", "k"), [("", 5), ("   \n", 5), ("reverse", 0), ("reverse", -2), ("reverse", True)])
def test_bad_search_input_is_refused_clearly(index: ToolIndex, query: str, k: int) -> None:
    with pytest.raises(ValueError, match=r"query is empty|k must be") as raised:
        index.search(query, k=k)
    assert "\n" not in str(raised.value)
    assert len(index.indexed()) == len(ENTRIES)  # nothing lost


def test_shipped_calibration_is_complete() -> None:
    calibration = Calibration.load()
    assert calibration.reuse_model is not None
    assert len(calibration.reuse_model.weights) == 5
    assert calibration.reranker is not None
    assert len(calibration.reranker.weights) == len(RERANK_FEATURES)
    assert 0.0 < calibration.reuse_threshold < 1.0
    assert calibration.floor_threshold > 0.0
    assert calibration.fitted_on["split_seed"]


# -- the text helpers under the index --------------------------------------------------------------------------


def test_lexical_tokens_split_identifiers_and_stem() -> None:
    assert lexical_tokens("maxRetryCount kilometres_to_miles, Counted PRICES") == [
        "max", "retry", "count", "kilometer", "mile", "count", "pric",
    ]
    assert parameter_names('def f(text: str, max_length: int, suffix: str = "...") -> str') == (
        "text max length suffix"
    )


def test_typo_corrector_fixes_only_unambiguous_misspellings() -> None:
    corrector = TypoCorrector(vocabulary_of("reverse_string fahrenheit vowels common multiple is_prime want"))
    # a letter missing, a letter extra, a letter wrong, two letters swapped; four-letter words too
    assert corrector.correct("revrse this, whats 25c in fahrenheitt, vowals, comnon, prme") == (
        "reverse this, whats 25c in fahrenheit, vowels, common, prime"
    )
    # real English words (also inflected) are never turned into tool words: went is one letter from want
    assert corrector.correct("went when those wants") == "went when those wants"


def test_typo_corrector_leaves_a_misspelling_of_two_tool_words_alone() -> None:
    assert TypoCorrector(vocabulary_of("mode moda")).correct("modx") == "modx"
    assert TypoCorrector(vocabulary_of("mode")).correct("modx") == "mode"


def test_negated_words_name_what_the_request_does_not_want() -> None:
    assert negated_words("A count per word, not one total.") == {"total"}
    assert negated_words("lowercase words joined by underscores (not hyphens, this isn't for a URL)") == {
        "hyphen", "url",
    }
    # the apostrophe of "don't" does not open a quote that would hide the negation
    assert negated_words("I don't need the reversed text, just a yes or no: is 'Step on no pets' a palindrome?") == {
        "revers", "text",
    }
    assert negated_words("Count the characters without spaces in 'not this'") == frozenset()


def test_negation_moves_the_negated_tool_down(settings: Settings, minilm: MiniLMEmbeddings) -> None:
    index = ToolIndex(settings, minilm)
    index.upsert([
        *ENTRIES,
        entry("count_words", "def count_words(text: str) -> int",
              "Return the total number of words in `text`; repeated words are counted every time they occur."),
        entry("word_frequencies", "def word_frequencies(text: str) -> dict[str, int]",
              "Count how often each word occurs in `text` and return a dict mapping each word to its count."),
    ])
    asked = "For 'a rose is a rose is a rose', how many times does each word occur? A count per word"
    reranker = index.calibration.reranker
    assert reranker is not None

    def margin(query: str) -> float:
        """The reranker's logit of count_words minus that of word_frequencies."""
        pool = {c.entry.name: c for c in index.candidates(query)}
        words, frequencies = rerank_features([pool["count_words"], pool["word_frequencies"]])
        return reranker.logit(words) - reranker.logit(frequencies)

    negated = asked + ", not one total."
    by_name = {c.entry.name: c for c in index.candidates(negated)}
    assert by_name["count_words"].negated_in_card == 1.0  # its card says "total"
    assert by_name["word_frequencies"].negated_in_card == 0.0
    assert margin(negated) < margin(asked)


def test_conversion_direction_reads_the_unit_after_the_number() -> None:
    pounds_to_kg = ConversionUnits.of("pounds_to_kilograms", "Convert pounds (lb) to kilograms.")
    assert pounds_to_kg is not None
    assert pounds_to_kg.direction("How many kilograms is 180 lb?") == 1.0
    assert pounds_to_kg.direction("Convert 70 kg to pounds.") == -1.0
    assert pounds_to_kg.direction("The dumbbell is stamped 45 lbs. What does it weigh in kg?") == 1.0
    assert pounds_to_kg.direction("What is a pound?") == 0.0
    assert ConversionUnits.of("median", "The middle value.") is None


# -- the benchmark command -------------------------------------------------------------------------------------


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_benchmark_prints_the_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tools = _write_jsonl(
        tmp_path / "tools.jsonl", [{"name": n, "signature": s, "description": d} for n, s, d in TOOLS]
    )
    queries = _write_jsonl(
        tmp_path / "queries.jsonl",
        [
            {"query": "Is 1900 a leap year?", "expected": "is_leap_year", "kind": "direct"},
            {"query": "Reverse 'stressed'.", "expected": "reverse_string", "kind": "direct"},
            {"query": "What is 20 percent of 80?", "expected": "percentage_of", "kind": "direct"},
            {"query": "Median of 5, 2, 9?", "expected": "median", "kind": "direct"},
            {"query": "Translate 'good morning' into Japanese.", "expected": None, "kind": "out_of_library"},
            {"query": "Send an email to my manager.", "expected": None, "kind": "out_of_library"},
        ],
    )
    assert bench_main(["--tools", str(tools), "--queries", str(queries), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("recall_at_1", "recall_at_5", "mrr", "decision_accuracy", "false_reuse_rate",
                "missed_reuse_rate", "floor_missed_rate", "floor_skip_rate", "search_p50_ms", "search_p95_ms"):
        assert 0.0 <= result[key] <= (1.0 if not key.startswith("search") else 10_000.0), key
    assert result["recall_at_5"] == 1.0
    assert result["queries"] == 6 and result["held_out"]["queries"] + result["tuning"]["queries"] == 6
    assert "recall_at_1" in result["baseline_dense"]


def test_benchmark_refuses_bad_input_in_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tools = _write_jsonl(tmp_path / "tools.jsonl", [{"name": "median", "signature": "def median(v)"}])
    queries = _write_jsonl(tmp_path / "queries.jsonl", [{"query": "x", "expected": None}])
    assert bench_main(["--tools", str(tools), "--queries", str(queries)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tools} row 1 lacks description."
    assert bench_main(["--tools", str(tmp_path / "missing.jsonl"), "--queries", str(queries)]) == 2
    assert "does not exist" in capsys.readouterr().err


# -- a Chroma server instead of the embedded client ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[int]:
    """A real `chroma run` server on a free loopback port, stopped after the test."""
    port = _free_port()
    chroma = Path(sys.executable).with_name("chroma")
    if not chroma.exists():
        pytest.skip("the chroma command of the chromadb package is not installed")
    log = (tmp_path / "chroma.log").open("wb")
    server = subprocess.Popen(
        [str(chroma), "run", "--path", str(tmp_path / "server-data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"chroma run did not start: {(tmp_path / 'chroma.log').read_text()[-500:]}")
                time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_index_uses_a_chroma_server_when_configured(
    tmp_path: Path, chroma_server: int, minilm: MiniLMEmbeddings
) -> None:
    settings = Settings(home=tmp_path / "sea-home", chroma_host="127.0.0.1", chroma_port=chroma_server)
    index = ToolIndex(settings, minilm)
    index.upsert(ENTRIES)
    assert not settings.index_dir.exists()  # nothing embedded on this machine's disk
    assert index.search("Is 2024 a leap year?", k=1)[0].name == "is_leap_year"
    second_client = ToolIndex(settings, minilm)
    assert second_client.indexed() == index.indexed()


def test_query_literals_separate_quoted_text_dates_and_numbers() -> None:
    literals = QueryLiterals.of("please revrse 'racecar2024' and add 45 days to 2024-01-01, then 3.5")
    # the digits inside quotes don't count
    assert literals == QueryLiterals(quoted=True, dates=1, numbers=2)
    assert QueryLiterals.of("days from 2025-05-20 to 2025-07-04").dates == 2
    assert not QueryLiterals.of("I don't want it, it's fine").quoted  # apostrophes are not quotes
    assert QueryLiterals.of("what is a pound?") == QueryLiterals(quoted=False, dates=0, numbers=0)
    assert QueryLiterals.of("Is 'Step on no pets' a palindrome?").yes_no
    assert QueryLiterals.of("How many days are in February 2024?").how_many
    assert not QueryLiterals.of("'is this' reversed please").yes_no  # quoted text is not the question


def test_signature_shape_matches_the_answer_asked_for_to_the_return_type() -> None:
    yes_no = QueryLiterals.of("Is 7919 prime?")
    assert SignatureShape.of("def is_prime(n: int) -> bool").compatibility(yes_no)[4] == 1.0
    assert SignatureShape.of("def factorial(n: int) -> int").compatibility(yes_no)[4] == -1.0
    how_many = QueryLiterals.of("how many vowels in 'banana'")
    assert SignatureShape.of("def count_vowels(text: str) -> int").compatibility(how_many)[5] == 1.0
    assert SignatureShape.of("def reverse_string(text: str) -> str").compatibility(how_many)[5] == -1.0
    one_date = QueryLiterals.of("What was the date 45 days before 2024-01-01?")
    add_days = SignatureShape.of("def add_days(date: str, days: int) -> str")
    days_between = SignatureShape.of("def days_between(start_date: str, end_date: str) -> int")
    assert (add_days.date_params, days_between.date_params) == (1, 2)
    assert add_days.compatibility(one_date)[6] == 0.0
    assert days_between.compatibility(one_date)[6] == -0.5


def test_signature_shape_reads_parameter_kinds() -> None:
    assert SignatureShape.of("def word_frequencies(text: str) -> dict[str, int]") == SignatureShape(
        text=True, date_params=0, numbers=0, sequence=False, returns="dict[str, int]"
    )
    assert SignatureShape.of("def age_in_years(birth_date: str, on_date: str | None = None) -> int").date
    shape = SignatureShape.of("def std(values: list[float], sample: bool = False, places: int = 2) -> float")
    assert shape == SignatureShape(text=False, date_params=0, numbers=1, sequence=True, returns="float")
    assert SignatureShape.of("def days_between(start_date: str, end_date: str) -> int").date_params == 2
    quoted = QueryLiterals.of("reverse 'abc'")
    assert SignatureShape.of("def f(text: str) -> str").compatibility(quoted)[0] == 1.0
    assert SignatureShape.of("def f(n: int) -> bool").compatibility(quoted)[0] == -1.0


def test_reranker_uses_argument_types_to_break_ties(index: ToolIndex) -> None:
    hits = index.search("Give me 'level' backwards", k=3)
    assert hits[0].name == "reverse_string"
    assert all(0.0 < h.score < 1.0 for h in hits)  # reranked scores are sigmoids
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
