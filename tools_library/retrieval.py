"""The tool index: dense plus lexical (BM25) retrieval, score fusion and the reuse-or-create signal.

Two vectors per tool: its card (name words, signature, description) and its name words alone; a tool's dense
score is the better of the two cosines, computed exactly over the vectors held in memory (a 2N x 384 matrix).
They are stored with the tool's entry in one SQLite file under the index folder (or in a Chroma server's
collection), one transaction per change, so every process reads every committed change whole; `refresh()`
reads what others wrote, and only when the file's change counter moved. (Chroma's embedded client was dropped:
a process never saw vectors another process added, and failed with "Error finding id" reading them.) BM25
(bm25s) runs over the name (split on underscores), the parameter names and the description, lightly stemmed;
it lives in memory and is rebuilt from the entries when they change. The candidates (both retrievers' top 30)
are ranked by a linear reranker over RERANK_FEATURES: the two cosines, BM25, the `a_to_b` direction (+1/-1
when the unit written right after a number is the tool's source/target unit), how the request's literal
arguments (quoted text, dates, numbers) fit the signature's parameter types, the share of the tool's name
words in the request, and how much of what the request negates ("not one total") is in the tool's name and
card; a hit's score is the sigmoid of that. Without a reranker the older weighted sum
`dense + lexical_weight * bm25 / (bm25 + lexical_saturation) + direction_weight * direction` is used. Query
words one edit from a word of the index's own vocabulary, and not English words, are corrected first.
The reranker, the weights and the logistic model of the reuse-or-create signal come from `calibration.json`,
fitted by `python -m bench.retrieval --calibrate` on the tuning half of the development set.
Knows nothing of LangGraph.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from tools_library.embeddings import embeddings_id, get_embeddings
from tools_library.models import ReuseDecision, SearchHit

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from sea.settings import Settings

CALIBRATION_PATH = Path(__file__).with_name("calibration.json")
# Candidates gathered from each retriever before fusion; fusion only reorders this pool.
CANDIDATE_POOL = 30
_KIND_CARD = "card"
_KIND_NAME = "name"

# --------------------------------------------------------------------------------------------------------------
# Text processing shared by BM25, the typo corrector and the direction feature.

_STOPWORD_TEXT = (
    "a an and are as at be by can do does for from how i if in into is it its me my of on or please so "
    "than that the their them then there these this those to u up was we what whats when where which who "
    "will with would you your yo plz pls lol rn def str int float bool list dict none tuple return returns"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
# The longest word the typo corrector and the stemmer's cache look at. English words stop well short of it
# (the development set's longest is 17 letters); what is longer is an identifier, a hash or an attack, and
# correcting it would cost work quadratic in its length (every deletion of every letter).
MAX_WORD_LENGTH = 32
_WORD = re.compile(r"[a-z]+|\d+")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")


def split_identifier(text: str) -> str:
    """'maxRetryCount' -> 'max Retry Count', 'miles_to_km' -> 'miles to km'."""
    return _CAMEL.sub(r"\1 \2", text).replace("_", " ")


def stem(word: str) -> str:
    """A light English stemmer (plurals, -ing, -ed, -ly, British -tre); enough to match query and card words.
    Words of up to MAX_WORD_LENGTH letters are cached (a cache of arbitrary request words would grow without
    bound)."""
    return _stem_cached(word) if len(word) <= MAX_WORD_LENGTH else _stem(word)


@lru_cache(maxsize=1 << 16)
def _stem_cached(word: str) -> str:
    return _stem(word)


def _stem(word: str) -> str:
    if len(word) <= 3:
        return word
    word = re.sub(r"tres?$", lambda m: "ter" + m.group(0)[3:], word)
    if word.endswith("ies") and len(word) >= 5:
        return word[:-3] + "y"
    if re.search(r"(ch|sh|x|z|ss)es$", word):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ing") and len(word) >= 6:
        word = word[:-3]
    elif (word.endswith("ed") and len(word) >= 5) or (word.endswith("ly") and len(word) >= 5):
        word = word[:-2]
    if word.endswith("e") and len(word) >= 5:
        word = word[:-1]
    return word


def lexical_tokens(text: str) -> list[str]:
    """Lower-cased, stemmed word tokens without stop words or bare numbers."""
    words = _WORD.findall(split_identifier(text).lower())
    return [stem(w) for w in words if w not in _STOPWORDS and not w.isdigit()]


def parameter_names(signature: str) -> str:
    """The parameter names of a `def f(a: int, b_c: str = 'x') -> T` signature, split into words."""
    match = re.search(r"\((.*)\)", signature)
    if not match:
        return ""
    names = []
    for part in match.group(1).split(","):
        found = re.match(r"[A-Za-z_]\w*", part.strip().lstrip("*"))
        if found and found.group(0) != "self":
            names.append(split_identifier(found.group(0)))
    return " ".join(names)


@lru_cache(maxsize=1 << 16)
def name_tokens(name: str) -> frozenset[str]:
    """The stemmed words of a tool name."""
    return frozenset(lexical_tokens(name))


def _share_in(words: frozenset[str], among: frozenset[str] | set[str]) -> float:
    return len(words & among) / len(words) if words else 0.0


def name_words(name: str) -> str:
    """A tool name as words: 'miles_to_kilometers' -> 'miles to kilometers'."""
    return split_identifier(name).strip()


def card_text(name: str, signature: str, description: str) -> str:
    """The text embedded as a tool's main vector."""
    return f"{name_words(name)}: {signature}\n{description}"


def lexical_document(name: str, signature: str, description: str, name_repeat: int = 3) -> list[str]:
    """BM25 tokens of a tool; the name counts `name_repeat` times because it is the most telling field."""
    return (
        lexical_tokens(name) * name_repeat
        + lexical_tokens(parameter_names(signature))
        + lexical_tokens(description)
    )


class TypoCorrector:
    """Fixes query words one edit away (a letter missing, extra or wrong, or two letters swapped) from a word of
    the index's own vocabulary (the tools' texts): "prme" -> "prime", "farenheit" -> "fahrenheit".

    A word the English dictionary knows (the embedding model's whole-word tokens, also after dropping an
    inflection: "toppings", "coldest") is never changed, so real words are not turned into tool words ("went"
    stays "went"). Misspellings are only ever corrected to tool words: the dictionary lacks too many real words
    ("lumbar", "armrests") to correct towards it. A misspelling a single edit from two tool words is left alone,
    as are words shorter than four letters or longer than MAX_WORD_LENGTH: the work per word is then at most
    MAX_WORD_LENGTH + 1 deletion keys of at most MAX_WORD_LENGTH letters. `keys_made` counts the deletion
    keys made for queries (a measure of the work done, read by the tests).
    """

    MIN_LENGTH = 4
    MAX_LENGTH = MAX_WORD_LENGTH

    def __init__(self, vocabulary: Iterable[str] = (), dictionary: frozenset[str] | None = None) -> None:
        self.vocabulary: set[str] = set()
        self.dictionary = english_words() if dictionary is None else dictionary
        self._deletions: dict[str, set[str]] = {}
        self.keys_made = 0
        self.add(vocabulary)

    def add(self, vocabulary: Iterable[str]) -> None:
        """Learn more vocabulary words (deletion keys only for those a query word in bounds can be one edit
        from)."""
        for word in vocabulary:
            if word in self.vocabulary:
                continue
            self.vocabulary.add(word)
            if self.MIN_LENGTH <= len(word) <= self.MAX_LENGTH + 1:
                for key in _deletion_keys(word):
                    self._deletions.setdefault(key, set()).add(word)

    def _split_compound(self, word: str) -> str | None:
        """'camelcase' -> 'camel case' when both halves (4+ letters) are vocabulary words, else None."""
        splits = [
            f"{word[:i]} {word[i:]}"
            for i in range(4, len(word) - 3)
            if word[:i] in self.vocabulary and word[i:] in self.vocabulary
        ]
        return splits[0] if len(splits) == 1 else None

    def _tool_word_for(self, word: str) -> str | None:
        keys = _deletion_keys(word)
        self.keys_made += len(keys)
        found = {c for key in keys for c in self._deletions.get(key, ())}
        found = {c for c in found if _one_edit_apart(word, c) and stem(c) != stem(word)}
        return found.pop() if len(found) == 1 else None

    def correct(self, text: str) -> str:
        """`text` with unambiguous misspellings replaced."""

        def fix(match: re.Match[str]) -> str:
            word = match.group(0).lower()
            if not self.MIN_LENGTH <= len(word) <= self.MAX_LENGTH or word in self.vocabulary or word in _STOPWORDS:
                return match.group(0)
            if _is_english(word, self.dictionary):
                return match.group(0)
            return self._tool_word_for(word) or self._split_compound(word) or match.group(0)

        return re.sub(r"[A-Za-z]+", fix, text)


def _deletion_keys(word: str) -> set[str]:
    """`word` and every way of dropping one of its letters: two words one edit apart share a key."""
    return {word} | {word[:i] + word[i + 1 :] for i in range(len(word))}


def _one_edit_apart(a: str, b: str) -> bool:
    """True if `a` and `b` differ by exactly one insertion, deletion, substitution or adjacent swap."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diffs) == 1 or (
            len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]]
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


_INFLECTION = re.compile(r"(?:s|es|ed|d|ing|er|est|ly)$")


def _is_english(word: str, dictionary: frozenset[str]) -> bool:
    """`word`, its stem or the word without an inflection ending is in `dictionary`."""
    if word in dictionary or stem(word) in dictionary:
        return True
    bare = _INFLECTION.sub("", word)
    return len(bare) >= 3 and (bare in dictionary or bare + "e" in dictionary)


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Lower-case English words: the whole-word tokens of the embedding model's vendored tokenizer."""
    from tools_library.embeddings import TOKENIZER_PATH

    vocab = json.loads(TOKENIZER_PATH.read_text(encoding="utf-8"))["model"]["vocab"]
    return frozenset(w for w in vocab if len(w) >= 2 and w.isascii() and w.isalpha() and w.islower())


def vocabulary_of(text: str) -> set[str]:
    """Lower-case words of a tool's texts, for the typo corrector."""
    return set(re.findall(r"[a-z]+", split_identifier(text).lower()))


_NUMBER_THEN_WORD = re.compile(r"\d[\d,.]*\s*(?:°\s*)?(?:degrees?\s+)?([a-z]+)")
_CONVERSION_NAME = re.compile(r"^(.+?)_to_(.+)$")
_ABBREVIATION = re.compile(r"([A-Za-z]+)\s*\(([A-Za-z]{1,4})\)")


@dataclass(frozen=True)
class ConversionUnits:
    """The source and target words of an `a_to_b` tool name, with abbreviations its description defines."""

    source: frozenset[str]
    target: frozenset[str]
    abbreviations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, description: str) -> ConversionUnits | None:
        match = _CONVERSION_NAME.match(name)
        if not match:
            return None
        abbreviations = {
            stem(short.lower()): stem(long.lower()) for long, short in _ABBREVIATION.findall(description)
        }
        return cls(
            frozenset(lexical_tokens(match.group(1))), frozenset(lexical_tokens(match.group(2))), abbreviations
        )

    @staticmethod
    def _names(written: str, unit: str) -> bool:
        if written == unit:
            return True
        if len(written) <= 3 and written[0] == unit[0]:  # an abbreviation: km, lb, mi, f, c
            letters = iter(unit)
            return all(letter in letters for letter in written)
        common = 0
        for a, b in zip(written, unit, strict=False):
            if a != b:
                break
            common += 1
        return common >= 4  # kilos ~ kilograms

    def direction(self, query: str) -> float:
        """+1 if the unit written after the first number is this tool's source, -1 if it is its target."""
        for match in _NUMBER_THEN_WORD.finditer(query.lower()):
            written = stem(match.group(1))
            if written not in self.abbreviations and len(written) <= 4 and written.endswith("s"):
                written = written[:-1]  # a plural abbreviation the stemmer leaves alone: lbs, kgs, mis
            written = self.abbreviations.get(written, written)
            is_source = any(self._names(written, unit) for unit in self.source)
            is_target = any(self._names(written, unit) for unit in self.target)
            if is_source != is_target:
                return 1.0 if is_source else -1.0
        return 0.0


# A single quote opens only where no letter or digit precedes it and closes only where none follows, so the
# apostrophes of "don't" or "cat's" are not taken for quotes.
_QUOTED = re.compile(
    r"(?<![A-Za-z0-9])'.+?'(?![A-Za-z0-9])|\"[^\"]*\"|`[^`]*`|\u2018[^\u2019]*\u2019|\u201c[^\u201d]*\u201d"
)
_DATE = re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_YES_NO_QUESTION = re.compile(
    r"^\s*(is|are|does|do|can|was|were|will)\b|\byes or no\b|\bwhether\b|\btrue or false\b", re.IGNORECASE
)
_HOW_MANY_QUESTION = re.compile(r"\bhow (many|much|long|often|old)\b|\bnumber of\b|\bcount\b", re.IGNORECASE)
_PARAMETER = re.compile(r"\*{0,2}([A-Za-z_]\w*)\s*(?::\s*([^=]+?))?\s*(?:=.*)?$")


@dataclass(frozen=True)
class QueryLiterals:
    """The literal arguments a query carries: a quoted text, dates (and how many), how many other numbers."""

    quoted: bool
    dates: int
    numbers: int
    yes_no: bool = False
    how_many: bool = False

    @property
    def date(self) -> bool:
        """The query carries at least one date."""
        return self.dates > 0

    @classmethod
    def of(cls, query: str) -> QueryLiterals:
        """Read a request's literals and the kind of answer it asks for (yes/no, a quantity)."""
        unquoted = _QUOTED.sub(" ", query)
        dates = len(_DATE.findall(unquoted))
        undated = _DATE.sub(" ", unquoted)
        return cls(
            quoted=unquoted != query, dates=dates, numbers=len(_NUMBER.findall(undated)),
            yes_no=bool(_YES_NO_QUESTION.search(unquoted)), how_many=bool(_HOW_MANY_QUESTION.search(unquoted)),
        )


# "not X", "isn't X", "rather than X": the words of X up to the next punctuation (at most five) name what the
# request does NOT want. "without" and "no" are left out: "count the characters without spaces" asks for an
# option of a tool, not against it.
_NEGATION = re.compile(r"(?:\bnot\b|n't\b|\bnever\b|\binstead of\b|\brather than\b)\s+((?:[\w'-]+\s*){1,5})", re.I)
_NEGATION_FILLERS = frozenset(
    {"need", "want", "just", "care", "mind", "sure", "like", "know", "think", "really", "actually", "looking", "one"}
)


def negated_words(query: str) -> frozenset[str]:
    """Stemmed content words of the phrases a request negates: "a count per word, not one total" -> {total}."""
    words: set[str] = set()
    for match in _NEGATION.finditer(_QUOTED.sub(" ", query)):
        phrase = re.split(r"[,.;:!?()]|\s-\s", match.group(1))[0]
        words.update(lexical_tokens(phrase))
    return frozenset(words - _NEGATION_FILLERS)


def _split_parameters(text: str) -> list[str]:
    """Top-level comma split (commas inside brackets, e.g. dict[str, int], do not split)."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "[("
        depth -= char in "])"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current] if current.strip() else parts


@dataclass(frozen=True)
class SignatureShape:
    """What kinds of arguments a tool takes, read from its `def f(...)` signature."""

    text: bool
    date_params: int
    numbers: int
    sequence: bool
    returns: str = ""

    @property
    def date(self) -> bool:
        """The signature has at least one date parameter."""
        return self.date_params > 0

    @classmethod
    def of(cls, signature: str) -> SignatureShape:
        match = re.search(r"\((.*)\)", signature.split("->")[0])
        text = sequence = False
        numbers = date_params = 0
        for part in _split_parameters(match.group(1)) if match else []:
            found = _PARAMETER.match(part.strip())
            if not found or found.group(1) == "self":
                continue
            name, annotation = found.group(1).lower(), (found.group(2) or "").strip()
            if "date" in name or re.match(r"(datetime\.)?date(time)?\b", annotation):
                date_params += 1
            elif re.match(r"str\b", annotation):
                text = True
            elif re.match(r"(int|float)\b", annotation):
                numbers += 1
            elif re.match(r"(list|tuple|set|Sequence|Iterable|typing\.)", annotation):
                sequence = True
        returns = signature.split("->", 1)[1].strip().rstrip(":").strip() if "->" in signature else ""
        return cls(text=text, date_params=date_params, numbers=numbers, sequence=sequence, returns=returns)

    def compatibility(self, literals: QueryLiterals) -> tuple[float, ...]:
        """Do the query's literal arguments fit the parameters, and the answer it asks for the return type?
        (quoted text vs str, date vs date-named parameter, count of numbers vs numeric parameters, three or
        more numbers vs a list parameter, a yes/no question vs `-> bool`, "how many" vs `-> int/float`, and how
        far the count of dates is from the count of date parameters)."""
        quoted = (1.0 if self.text else -1.0) if literals.quoted else 0.0
        dated = (1.0 if self.date else -1.0) if literals.date else 0.0
        numbers = -abs(literals.numbers - self.numbers) / 3.0 if literals.numbers else 0.0
        listed = 1.0 if literals.numbers >= 3 and self.sequence else 0.0
        yes_no = (1.0 if self.returns == "bool" else -1.0) if literals.yes_no else 0.0
        how_many = (1.0 if self.returns in ("int", "float") else -1.0) if literals.how_many else 0.0
        date_count = -abs(literals.dates - self.date_params) / 2.0 if literals.dates else 0.0
        return quoted, dated, numbers, listed, yes_no, how_many, date_count


# --------------------------------------------------------------------------------------------------------------
# Calibration: fusion weights and the reuse-or-create models.


class LogisticModel(BaseModel):
    """p = sigmoid(bias + weights . standardised(features))."""

    weights: list[float]
    bias: float
    means: list[float]
    scales: list[float]

    def logit(self, features: list[float]) -> float:
        """bias + weights . standardised(features)."""
        return self.bias + sum(
            w * (x - m) / s for w, x, m, s in zip(self.weights, features, self.means, self.scales, strict=True)
        )

    def probability(self, features: list[float]) -> float:
        """sigmoid(logit)."""
        return _sigmoid(self.logit(features))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


def _logit_of(p: float) -> float:
    p = min(max(p, 1e-12), 1.0 - 1e-12)
    return math.log(p / (1.0 - p))


RERANK_FEATURES = (
    "card_cosine", "name_cosine", "bm25", "direction",
    "quoted_text_vs_str_param", "date_vs_date_param", "numbers_vs_numeric_params", "many_numbers_vs_list_param",
    "name_words_in_query", "yes_no_question_vs_bool_return", "how_many_question_vs_numeric_return",
    "dates_vs_date_params", "negated_words_in_name", "negated_words_in_card",
)
REUSE_FEATURES = ("top1_score", "top1_minus_top2_logit", "top1_dense", "top1_bm25_saturated", "top1_share_of_top_k")


class Calibration(BaseModel):
    """Tuned parameters of fusion and of the reuse-or-create signal (tools_library/calibration.json)."""

    lexical_weight: float = 0.05
    lexical_saturation: float = 2.0
    direction_weight: float = 0.05
    name_repeat: int = 3
    reranker: LogisticModel | None = Field(
        default=None, description="Linear scorer over RERANK_FEATURES; when set, a hit's score is its sigmoid."
    )
    reuse_model: LogisticModel | None = None
    reuse_threshold: float = 0.5
    floor_threshold: float = Field(default=0.0, description="Top-1 fused score below which nothing fits.")
    fitted_on: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = CALIBRATION_PATH) -> Calibration:
        """The shipped calibration, or the defaults if the file is absent."""
        if not path.is_file():
            return cls()
        return cls.model_validate_json(path.read_text(encoding="utf-8"))

    def lexical_part(self, bm25: float) -> float:
        return self.lexical_weight * bm25 / (bm25 + self.lexical_saturation) if bm25 > 0 else 0.0


def decision_features(hits: list[SearchHit], calibration: Calibration) -> list[float]:
    """Features of the reuse model (REUSE_FEATURES): top-1 score, top-1/top-2 margin in logits, top-1 dense
    cosine, top-1 BM25 saturated, and the top-1's softmax share among the hits."""
    top = hits[0]
    logits = [_logit_of(h.score) for h in hits] if calibration.reranker else [h.score for h in hits]
    second = logits[1] if len(logits) > 1 else logits[0] - 10.0
    bm25 = top.lexical_score or 0.0
    peak = max(logits)
    weights = [math.exp(v - peak) for v in logits]
    return [top.score, logits[0] - second, top.dense_score or 0.0, bm25 / (bm25 + 2.0), weights[0] / sum(weights)]


def floor_score(hit: SearchHit) -> float:
    """What the floor is compared with: the hit's dense cosine (an absolute measure of fit; the reranked score
    is relative to the other candidates), or its score when it has none."""
    return hit.dense_score if hit.dense_score is not None else hit.score


def decide(hits: list[SearchHit], calibration: Calibration) -> ReuseDecision:
    """The reuse-or-create signal from scores alone (see ToolIndex.reuse_decision)."""
    if not hits:
        return ReuseDecision(choice=None, confidence=1.0, above_floor=False, reason="The library is empty.")
    top = hits[0]
    above_floor = floor_score(top) >= calibration.floor_threshold
    if calibration.reuse_model is None:  # uncalibrated: never reuse silently, always let a model judge
        return ReuseDecision(choice=None, confidence=0.5, above_floor=above_floor, reason="No calibration.")
    p_reuse = calibration.reuse_model.probability(decision_features(hits, calibration))
    if p_reuse >= calibration.reuse_threshold:
        return ReuseDecision(
            choice=top.name,
            confidence=p_reuse,
            above_floor=True,
            reason=f"{top.name} scored {top.score:.3f}; P(right tool) {p_reuse:.2f} clears "
            f"{calibration.reuse_threshold:.2f}.",
        )
    reason = (
        f"Best candidate {top.name} scored {top.score:.3f}; P(right tool) {p_reuse:.2f} is below "
        f"{calibration.reuse_threshold:.2f}."
    )
    if not above_floor:
        reason += (
            f" Its dense cosine {floor_score(top):.3f} is below the floor {calibration.floor_threshold:.3f}: "
            "no candidate is worth asking a model about."
        )
    return ReuseDecision(choice=None, confidence=1.0 - p_reuse, above_floor=above_floor, reason=reason)


# --------------------------------------------------------------------------------------------------------------
# The index.


class IndexEntry(BaseModel):
    """What the index keeps of one tool: its active version's searchable texts."""

    name: str
    version: int
    signature: str
    description: str
    content_hash: str


@dataclass
class Candidate:
    """Raw scores of one tool for one query, before fusion."""

    entry: IndexEntry
    dense: float
    bm25: float
    direction: float
    card_cosine: float = 0.0
    name_cosine: float = 0.0
    compatibility: tuple[float, ...] = (0.0,) * 7
    name_overlap: float = 0.0
    negated_in_name: float = 0.0
    negated_in_card: float = 0.0


def rerank_features(candidates: list[Candidate]) -> list[list[float]]:
    """The reranker's inputs for each candidate, in RERANK_FEATURES order. Features relative to the pool's best
    (cosine minus the best cosine) were measured too: two more held-out hits, but a top-1 that always looks
    confident, which broke the reuse signal on out-of-library requests in small libraries."""
    return [
        [c.card_cosine, c.name_cosine, c.bm25, c.direction, *c.compatibility[:4], c.name_overlap,
         *c.compatibility[4:], c.negated_in_name, c.negated_in_card]
        for c in candidates
    ]


def _vector_id(name: str, kind: str) -> str:
    return f"{name}::{kind}"


# Most results a search returns: it bounds the candidate pool (max(CANDIDATE_POOL, k) per retriever).
MAX_RESULTS = 100


class SearchQueryError(ValueError):
    """A search query that is refused: empty, too long, or asking for a bad number of results."""


class RequestTooLongError(SearchQueryError):
    """A request (a chat message, a CLI request, a search query) longer than Settings.max_request_chars."""


def request_too_long(text: str, limit: int) -> str | None:
    """The one sentence refusing `text` when it is longer than `limit` characters, else None."""
    if len(text) <= limit:
        return None
    return (
        f"The request is {len(text):,} characters long, over the limit of {limit:,} (SEA_MAX_REQUEST_CHARS): "
        "shorten it to the task itself."
    )


def check_request_length(text: str, limit: int) -> None:
    """Raise RequestTooLongError (one sentence naming the limit) when `text` is over `limit` characters."""
    refusal = request_too_long(text, limit)
    if refusal is not None:
        raise RequestTooLongError(refusal)


def _validate_query(query: str, k: int | None, max_chars: int | None = None) -> None:
    if not isinstance(query, str) or not query.strip():
        raise SearchQueryError("The search query is empty: give a few words describing the tool you need.")
    if max_chars is not None:
        check_request_length(query, max_chars)
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_RESULTS):
        raise SearchQueryError(f"k must be a whole number of results from 1 to {MAX_RESULTS} (got {k!r}).")


def _unit_rows(vectors: Any) -> np.ndarray:
    """Float32 rows scaled to unit length (cosine = dot product)."""
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    return array / np.clip(norms, 1e-12, None)


class _SqliteBackend:
    """The index's entries and vectors in one SQLite file (WAL), written one transaction per change.

    Any process opening the same file reads every committed change at once and whole: a change is one
    transaction, and `changes` (a counter every write transaction increments) tells a reader whether to look.
    """

    def __init__(self, path: Path, model: str) -> None:
        import sqlite3

        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=60.0, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # derived data: the library re-syncs it from its files
            with self._write():
                self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS entries (name TEXT PRIMARY KEY, version INTEGER NOT NULL, "
                    "signature TEXT NOT NULL, description TEXT NOT NULL, content_hash TEXT NOT NULL, "
                    "card BLOB NOT NULL, name_vector BLOB NOT NULL)"
                )
                stored = self._db.execute("SELECT value FROM meta WHERE key = 'embeddings'").fetchone()
                if stored is None or stored[0] != model:  # vectors of another model are useless: start over
                    self._db.execute("DELETE FROM entries")
                    self._db.execute("INSERT OR REPLACE INTO meta VALUES ('embeddings', ?)", (model,))
                    self._bump()

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE: writers queue on SQLite's lock, readers go on)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _changes(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'changes'").fetchone()
        return int(row[0]) if row else 0

    def _bump(self) -> tuple[int, int]:
        before = self._changes()
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('changes', ?)", (str(before + 1),))
        return before, before + 1

    def token(self) -> int | None:
        """The change counter (None would mean: unknown, always re-read)."""
        with self._lock:
            return self._changes()

    def read(self, known: dict[str, IndexEntry]) -> tuple[int | None, dict[str, IndexEntry], dict[str, np.ndarray]]:
        """One consistent snapshot: the change counter, every entry, and the vectors of the entries that differ
        from `known`."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                token = self._changes()
                entries = {
                    row[0]: IndexEntry(
                        name=row[0], version=row[1], signature=row[2], description=row[3], content_hash=row[4]
                    )
                    for row in self._db.execute(
                        "SELECT name, version, signature, description, content_hash FROM entries"
                    )
                }
                changed = {name for name, entry in entries.items() if known.get(name) != entry}
                vectors = {}
                rows = self._db.execute("SELECT name, card, name_vector FROM entries") if len(changed) > 500 else (
                    row
                    for name in changed
                    for row in self._db.execute(
                        "SELECT name, card, name_vector FROM entries WHERE name = ?", (name,)
                    )
                )
                for name, card, name_vector in rows:
                    if name in changed:
                        vectors[name] = np.vstack(
                            [np.frombuffer(card, dtype=np.float32), np.frombuffer(name_vector, dtype=np.float32)]
                        )
            finally:
                self._db.execute("COMMIT")
        return token, entries, vectors

    def write(self, entries: list[IndexEntry], vectors: dict[str, np.ndarray]) -> tuple[int | None, int | None]:
        """Insert or replace entries with their vectors in one transaction; the counter before and after."""
        rows = [
            (e.name, e.version, e.signature, e.description, e.content_hash,
             vectors[e.name][0].astype(np.float32).tobytes(), vectors[e.name][1].astype(np.float32).tobytes())
            for e in entries
        ]
        with self._lock, self._write():
            self._db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            return self._bump()

    def delete(self, names: list[str]) -> tuple[int | None, int | None]:
        """Remove entries in one transaction; the counter before and after."""
        with self._lock, self._write():
            self._db.executemany("DELETE FROM entries WHERE name = ?", [(n,) for n in names])
            return self._bump()

    def clear(self) -> None:
        with self._lock, self._write():
            self._db.execute("DELETE FROM entries")
            self._bump()

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _ChromaServerBackend:
    """The index's entries and vectors in a Chroma server's collection (two vectors per tool, as ids
    `name::card` and `name::name`); the vectors are this index's own (searched in memory here)."""

    def __init__(self, host: str, port: int, collection: str, model: str) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        self._client = chromadb.HttpClient(
            host=host, port=port, settings=ChromaSettings(anonymized_telemetry=False)
        )
        self._name = collection
        self._model = model
        self._collection = self._open()
        if (self._collection.metadata or {}).get("embeddings") != model:
            self.clear()

    def _open(self) -> Any:
        return self._client.get_or_create_collection(
            self._name, metadata={"embeddings": self._model}, configuration={"hnsw": {"space": "cosine"}}
        )

    def token(self) -> int | None:
        return None  # no cheap change counter: a refresh always reads the entries

    def read(self, known: dict[str, IndexEntry]) -> tuple[int | None, dict[str, IndexEntry], dict[str, np.ndarray]]:
        stored = self._collection.get(where={"kind": _KIND_CARD}, include=["metadatas"])
        entries = {}
        for metadata in stored["metadatas"]:
            entry = IndexEntry(
                name=metadata["name"], version=int(metadata["version"]), signature=metadata["signature"],
                description=metadata["description"], content_hash=metadata["content_hash"],
            )
            entries[entry.name] = entry
        changed = [name for name, entry in entries.items() if known.get(name) != entry]
        found: dict[tuple[str, str], np.ndarray] = {}
        for start in range(0, len(changed), 1000):
            ids = [_vector_id(n, kind) for n in changed[start : start + 1000] for kind in (_KIND_CARD, _KIND_NAME)]
            got = self._collection.get(ids=ids, include=["embeddings"])
            for vector_id, vector in zip(got["ids"], got["embeddings"], strict=True):
                name, kind = vector_id.rsplit("::", 1)
                found[name, kind] = np.asarray(vector, dtype=np.float32)
        vectors = {
            name: np.vstack([found[name, _KIND_CARD], found[name, _KIND_NAME]])
            for name in changed
            if (name, _KIND_CARD) in found and (name, _KIND_NAME) in found
        }
        return None, {n: e for n, e in entries.items() if n not in changed or n in vectors}, vectors

    def write(self, entries: list[IndexEntry], vectors: dict[str, np.ndarray]) -> tuple[int | None, int | None]:
        ids, embeddings, texts, metadatas = [], [], [], []
        for entry in entries:
            base = entry.model_dump()
            ids += [_vector_id(entry.name, _KIND_CARD), _vector_id(entry.name, _KIND_NAME)]
            embeddings += [vectors[entry.name][0], vectors[entry.name][1]]
            texts += [card_text(entry.name, entry.signature, entry.description), name_words(entry.name)]
            metadatas += [{**base, "kind": _KIND_CARD}, {"name": entry.name, "kind": _KIND_NAME}]
        self._collection.upsert(ids=ids, embeddings=embeddings, documents=texts, metadatas=metadatas)
        return None, None

    def delete(self, names: list[str]) -> tuple[int | None, int | None]:
        self._collection.delete(ids=[_vector_id(n, kind) for n in names for kind in (_KIND_CARD, _KIND_NAME)])
        return None, None

    def clear(self) -> None:
        with contextlib.suppress(Exception):  # absent already
            self._client.delete_collection(self._name)
        self._collection = self._open()

    def close(self) -> None:
        return None


class ToolIndex:
    """Hybrid dense + BM25 index of tools, one entry per tool name (its active version)."""

    def __init__(
        self,
        settings: Settings | None = None,
        embeddings: Embeddings | None = None,
        *,
        persist_dir: Path | None = None,
        collection: str = "tools",
        calibration: Calibration | None = None,
    ) -> None:
        """Open (or create) the index: `<persist_dir>/<collection>.sqlite3` (default settings.index_dir), or a
        collection of the Chroma server of settings.chroma_host; the vectors, BM25 and the typo vocabulary are
        loaded into memory from what it holds."""
        if settings is None:
            from sea.settings import get_settings

            settings = get_settings()
        self._embeddings = embeddings if embeddings is not None else get_embeddings(settings)
        self.calibration = calibration if calibration is not None else Calibration.load()
        self.max_query_chars = settings.max_request_chars
        self._model = embeddings_id(self._embeddings)
        self._backend: _SqliteBackend | _ChromaServerBackend
        if settings.chroma_host and persist_dir is None:
            self._backend = _ChromaServerBackend(settings.chroma_host, settings.chroma_port, collection, self._model)
        else:
            folder = Path(persist_dir) if persist_dir is not None else settings.index_dir
            self._backend = _SqliteBackend(folder / f"{collection}.sqlite3", self._model)
        self._lock = threading.RLock()
        self._entries: dict[str, IndexEntry] = {}
        self._vectors: dict[str, np.ndarray] = {}
        self._token: int | None = None
        self._token_cache: dict[tuple[str, str], tuple[list[str], set[str]]] = {}
        self.refresh(force=True)

    # -- maintenance -------------------------------------------------------------------------------------------

    def _install(self, entries: dict[str, IndexEntry], vectors: dict[str, np.ndarray]) -> None:
        """Make `entries` (with `vectors`, one (2, d) array of card and name vector per name) what this index
        searches: the vector matrix, BM25, the typo vocabulary and the conversion units. Token lists are cached
        per tool version, so a change re-tokenises only what changed."""
        import bm25s

        names = sorted(entries)
        corrector = TypoCorrector()
        documents = []
        card_words: dict[str, frozenset[str]] = {}
        cache: dict[tuple[str, str], tuple[list[str], set[str]]] = {}
        for name in names:
            entry = entries[name]
            key = (name, entry.content_hash)
            cached = self._token_cache.get(key)
            if cached is None:
                cached = (
                    lexical_document(entry.name, entry.signature, entry.description, self.calibration.name_repeat),
                    vocabulary_of(f"{entry.name} {entry.signature} {entry.description}"),
                )
            cache[key] = cached
            documents.append(cached[0])
            card_words[name] = frozenset(cached[0])
            corrector.add(cached[1])
        bm25 = None
        if names:
            bm25 = bm25s.BM25()
            bm25.index(documents, show_progress=False)
        units = {name: ConversionUnits.of(name, entries[name].description) for name in names}
        shapes = {name: SignatureShape.of(entries[name].signature) for name in names}
        # Rows 2i and 2i+1 are the card and name vectors of names[i].
        matrix = np.vstack([vectors[name] for name in names]) if names else np.zeros((0, 0), dtype=np.float32)
        with self._lock:
            self._token_cache = cache
            self._entries = entries
            self._vectors = vectors
            self._names = names
            self._matrix = matrix
            self._bm25 = bm25
            self._corrector = corrector
            self._units = {name: u for name, u in units.items() if u is not None}
            self._shapes = shapes
            self._card_words = card_words

    def refresh(self, *, force: bool = False) -> None:
        """Read what other processes (or other ToolIndex objects) wrote since this one last looked: nothing is
        read when the store's change counter has not moved."""
        with self._lock:
            if not force and self._token is not None and self._backend.token() == self._token:
                return
            token, entries, changed = self._backend.read(self._entries)
            vectors = {name: changed[name] if name in changed else self._vectors[name] for name in entries}
            self._token = token
            self._install(entries, {name: _unit_rows(v) for name, v in vectors.items()})

    def _after_write(self, counter: tuple[int | None, int | None]) -> None:
        """Move this index's change counter on only if nobody else wrote since it last read."""
        before, after = counter
        if before is not None and before == self._token:
            self._token = after

    def upsert(self, entries: list[IndexEntry]) -> None:
        """Index each entry under its tool name, replacing that name's previous entry."""
        if not entries:
            return
        latest = {entry.name: entry for entry in entries}  # the last entry for a name wins
        texts = []
        for entry in latest.values():
            texts += [card_text(entry.name, entry.signature, entry.description), name_words(entry.name)]
        embedded = np.asarray(self._embeddings.embed_documents(texts), dtype=np.float32)
        vectors = {name: embedded[2 * i : 2 * i + 2] for i, name in enumerate(latest)}
        with self._lock:
            self._after_write(self._backend.write(list(latest.values()), vectors))
            self._install(
                {**self._entries, **latest}, {**self._vectors, **{n: _unit_rows(v) for n, v in vectors.items()}}
            )

    def delete(self, names: list[str]) -> None:
        """Remove these tools from the index (unknown names are ignored)."""
        if not names:
            return
        gone = set(names)
        with self._lock:
            self._after_write(self._backend.delete(list(gone)))
            self._install(
                {n: e for n, e in self._entries.items() if n not in gone},
                {n: v for n, v in self._vectors.items() if n not in gone},
            )

    def indexed(self) -> dict[str, str]:
        """name -> content_hash of every indexed tool."""
        with self._lock:
            return {name: entry.content_hash for name, entry in self._entries.items()}

    def clear(self) -> None:
        """Remove everything from the index."""
        with self._lock:
            self._backend.clear()
            self.refresh(force=True)

    def close(self) -> None:
        """Release the index's file (or server connection)."""
        with self._lock:
            self._backend.close()

    def __len__(self) -> int:
        return len(self._entries)

    # -- search ------------------------------------------------------------------------------------------------

    def candidates(self, query: str, pool: int = CANDIDATE_POOL) -> list[Candidate]:
        """Raw dense, BM25 and direction scores for the union of both retrievers' top `pool` tools."""
        _validate_query(query, None, self.max_query_chars)
        pool = min(max(1, pool), MAX_RESULTS)
        with self._lock:
            names, entries, bm25, units = self._names, self._entries, self._bm25, self._units
            shapes, card_words, matrix = self._shapes, self._card_words, self._matrix
            corrected = self._corrector.correct(query)
        if not names:
            return []
        vector = self._embeddings.embed_query(corrected)
        query_vector = _unit_rows(vector)
        cosines = matrix @ query_vector
        dense: dict[str, float] = {}
        by_kind: dict[tuple[str, str], float] = {}
        # The dense retriever's top 2 * pool vectors (of both kinds), as the vector search the reranker was
        # fitted with returned them; the reranker's features depend on which tools it found by which kind.
        count = min(len(cosines), 2 * pool)
        top = np.argpartition(-cosines, count - 1)[:count] if count < len(cosines) else np.arange(len(cosines))
        for row in top:
            name, kind = names[row // 2], (_KIND_CARD, _KIND_NAME)[row % 2]
            by_kind[name, kind] = float(cosines[row])
            dense[name] = max(dense.get(name, -1.0), float(cosines[row]))
        lexical: dict[str, float] = {}
        tokens = lexical_tokens(corrected)
        if bm25 is not None and tokens:
            scores = bm25.get_scores(tokens)
            best = np.argsort(-scores)[:pool]
            lexical = {names[i]: float(scores[i]) for i in best if scores[i] > 0}
        positions = {name: i for i, name in enumerate(names)} if lexical else {}
        for name in lexical:
            if name not in dense:  # a BM25 hit the dense top did not return: both its exact cosines
                row = 2 * positions[name]
                by_kind[name, _KIND_CARD] = float(cosines[row])
                by_kind[name, _KIND_NAME] = float(cosines[row + 1])
                dense[name] = max(by_kind[name, _KIND_CARD], by_kind[name, _KIND_NAME])
        # A tool found by one vector kind only is given, for the other kind, the lowest cosine the dense top
        # holds for that kind (an upper bound on its own), as the reranker was fitted.
        lowest = {kind: min((v for (_, k), v in by_kind.items() if k == kind), default=0.0)
                  for kind in (_KIND_CARD, _KIND_NAME)}
        literals = QueryLiterals.of(query)
        query_words = set(tokens)
        negated = negated_words(corrected)
        result = []
        for name in sorted(dense.keys() | lexical.keys()):
            unit = units.get(name)
            result.append(
                Candidate(
                    entries[name], dense[name], lexical.get(name, 0.0), unit.direction(query) if unit else 0.0,
                    card_cosine=by_kind.get((name, _KIND_CARD), lowest[_KIND_CARD]),
                    name_cosine=by_kind.get((name, _KIND_NAME), lowest[_KIND_NAME]),
                    compatibility=shapes[name].compatibility(literals),
                    name_overlap=_share_in(name_tokens(name), query_words),
                    negated_in_name=_share_in(negated, name_tokens(name)),
                    negated_in_card=_share_in(negated, card_words[name]),
                )
            )
        return result

    def fuse(self, candidates: list[Candidate], k: int, calibration: Calibration | None = None) -> list[SearchHit]:
        """Rank candidates by fused score and return the top k as SearchHits."""
        cal = calibration or self.calibration
        reranker = cal.reranker

        if reranker is not None:
            scores = [reranker.probability(row) for row in rerank_features(candidates)]
        else:
            scores = [c.dense + cal.lexical_part(c.bm25) + cal.direction_weight * c.direction for c in candidates]
        scored = sorted(zip(scores, candidates, strict=True), key=lambda pair: (-pair[0], pair[1].entry.name))
        return [
            SearchHit(
                name=c.entry.name, version=c.entry.version, signature=c.entry.signature,
                description=c.entry.description, score=score, dense_score=c.dense, lexical_score=c.bm25,
                rank=rank,
            )
            for rank, (score, c) in enumerate(scored[:k], start=1)
        ]

    def search(self, query: str, k: int = 5) -> list[SearchHit]:
        """The k best tools for `query`, best first, with fused, dense (cosine) and lexical (BM25) scores.
        SearchQueryError (a ValueError, one sentence) for an empty or too long query or a bad k."""
        _validate_query(query, k, self.max_query_chars)
        return self.fuse(self.candidates(query, max(CANDIDATE_POOL, k)), k)

    def reuse_decision(self, hits: list[SearchHit]) -> ReuseDecision:
        """Reuse the top hit if the calibrated model says it is right; `above_floor` False when nothing is
        worth showing a model."""
        return decide(hits, self.calibration)


def write_calibration(calibration: Calibration, path: Path = CALIBRATION_PATH) -> None:
    """Write tuned parameters (used by the benchmark's --calibrate)."""
    path.write_text(json.dumps(calibration.model_dump(), indent=2) + "\n", encoding="utf-8")
