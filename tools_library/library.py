"""The tool library: versioned files on disk (the truth), a derived search index, sandbox verification."""

from __future__ import annotations

import ast
import hashlib
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from sea.settings import Settings, get_settings
from tools_library.models import ReuseDecision, SearchHit, ToolDraft, ToolManifest, make_stub, validate_tool_name
from tools_library.packs import InstallResult, PackReport, read_pack, write_pack
from tools_library.store import (
    ToolLibraryError,
    ToolNotFoundError,
    ToolRetiredError,
    ToolStore,
    VersionCard,
    content_hash,
    content_hash_of,
    diff_versions,
    sha256_text,
)

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from sandbox.models import TestReport
    from tools_library.retrieval import ToolIndex

log = logging.getLogger(__name__)


class DuplicateToolError(ToolLibraryError):
    """A new tool under a new name that is a twin of an existing tool (same signature, same meaning)."""

    def __init__(self, message: str, existing: ToolManifest, similarity: float) -> None:
        super().__init__(message)
        self.existing = existing
        self.similarity = similarity


class InvalidToolError(ToolLibraryError):
    """A draft whose code or tests cannot be a tool: not Python, or no function named after the tool."""


class NotVerifiedError(ToolLibraryError):
    """A draft without a passing sandbox report, or whose tests failed when the library ran them."""

    def __init__(self, message: str, report: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


@dataclass(frozen=True)
class _Verified:
    """A draft whose `verification` is the library's own passing sandbox run on exactly its code and tests.

    Only `ToolLibrary._verify` makes these, and `_commit` stores nothing else: that is the invariant.
    """

    draft: ToolDraft
    content: str  # content_hash of the code and tests the sandbox ran


_REPORT_STREAM_CHARS = 2000  # the tail of the tests' stdout/stderr kept in a manifest


class IndexSync(BaseModel):
    """What `sync_index` changed to make the index agree with the files."""

    upserted: list[str] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)


_TYPING_ALIASES = {"List": "list", "Dict": "dict", "Tuple": "tuple", "Set": "set", "FrozenSet": "frozenset"}


def normalised_signature(signature: str, code: str = "", name: str = "") -> tuple[tuple[str, ...], str] | None:
    """The parameter types and return type of a signature, ignoring every name; None if unparseable.

    `def f(text: str, n: int = 2) -> str` and `def g(s: str, k: int) -> str` both give
    `(("str", "int"), "str")`.
    """
    func = _signature_def(signature, code, name)
    if func is None:
        return None
    args = func.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    if args.vararg:
        params.append(args.vararg)
    if args.kwarg:
        params.append(args.kwarg)
    types = tuple(_normalise_annotation(p.annotation) for p in params)
    return types, _normalise_annotation(func.returns)


def _signature_def(
    signature: str, code: str = "", name: str = ""
) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The `def` node of a signature line, else of function `name` in `code`; None if neither parses."""
    func = _parse_def(signature.strip().rstrip(":") + ":\n    pass\n")
    if func is None and code:
        func = _find_function(code, name)
    return func


def parameter_names(signature: str, code: str = "", name: str = "") -> tuple[str, ...] | None:
    """The parameter names of a signature, in order, lower-cased; None if unparseable."""
    func = _signature_def(signature, code, name)
    if func is None:
        return None
    args = func.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    return tuple(p.arg.lower() for p in params)


def _reordered_names(a: str, b: str) -> bool:
    """True when two names are the same words in a different order, e.g. a_to_b and b_to_a."""
    words_a, words_b = a.split("_"), b.split("_")
    return words_a != words_b and sorted(words_a) == sorted(words_b)


def _parse_def(source: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    first = tree.body[0] if tree.body else None
    return first if isinstance(first, ast.FunctionDef | ast.AsyncFunctionDef) else None


def _find_function(code: str, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return node
    return None


def _normalise_annotation(node: ast.expr | None) -> str:
    if node is None:
        return "any"
    text = ast.unparse(node).replace("typing.", "").replace(" ", "")
    for alias, builtin in _TYPING_ALIASES.items():
        text = re.sub(rf"\b{alias}\b", builtin, text)
    text = re.sub(r"\bOptional\[(.+)\]$", r"\1|None", text)
    return text.lower()


def index_hash(tool: ToolManifest | VersionCard) -> str:
    """What the index must agree with for a tool: its active version, card and content."""
    if isinstance(tool, ToolManifest):
        content = content_hash(tool.code, tool.tests)
    else:
        content = content_hash_of(tool.code_sha256, tool.tests_sha256)
    text = "\n".join([str(tool.version), tool.signature, tool.description, content])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ToolLibrary:
    """Versioned, verified, searchable tools. Open with `ToolLibrary.open()`."""

    def __init__(
        self,
        settings: Settings | None = None,
        sandbox: Any = None,
        *,
        index: ToolIndex | None = None,
        embeddings: Embeddings | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.store = ToolStore(self.settings.tools_dir)
        self._sandbox = sandbox
        self._index = index
        self._embeddings = embeddings
        self._seen_generation = -1  # the store generation the index was last brought in line with
        self._index_lock = threading.RLock()  # one index catch-up or write at a time in this process

    @classmethod
    def open(
        cls,
        settings: Settings | None = None,
        sandbox: Any = None,
        *,
        index: ToolIndex | None = None,
        embeddings: Embeddings | None = None,
        sync_index: bool = True,
    ) -> ToolLibrary:
        """Open the library: clean up interrupted writes and bring the index in line with the files."""
        library = cls(settings, sandbox, index=index, embeddings=embeddings)
        library.store.recover()
        if sync_index:
            library.sync_index()
        return library

    def close(self, *, close_sandbox: bool = False) -> None:
        """Release the index (the files need no closing); with `close_sandbox`, stop the sandbox too."""
        closer = getattr(self._index, "close", None)
        if callable(closer):
            closer()
        self._index = None
        if close_sandbox and self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None

    # ---- parts, created on first use -------------------------------------------------------------

    @property
    def embeddings(self) -> Embeddings:
        if self._embeddings is None:
            from tools_library.embeddings import get_embeddings

            self._embeddings = get_embeddings(self.settings)
        return self._embeddings

    @property
    def index(self) -> ToolIndex:
        if self._index is None:
            from tools_library.retrieval import ToolIndex

            self._index = ToolIndex(self.settings, self.embeddings)
        return self._index

    @property
    def sandbox(self) -> Any:
        if self._sandbox is None:
            from sandbox import get_sandbox

            self._sandbox = get_sandbox()
        return self._sandbox

    # ---- the index --------------------------------------------------------------------------------

    def sync_index(self) -> IndexSync:
        """Make the index hold exactly the active version of every active tool; fix only what differs.

        The store's generation is read first, then what the index holds, then the files: the index then holds
        at least every change committed before that generation, and a later change moves the generation on,
        so the next search catches up again. Serialised with this library's own index writes.
        """
        from tools_library.retrieval import IndexEntry

        with self._index_lock:
            generation = self.store.generation()
            have = self.index.indexed()
            wanted = {card.name: card for card in self.store.active_cards()}
            stale: list[ToolManifest] = []
            for name, card in wanted.items():
                if have.get(name) == index_hash(card):
                    continue
                try:
                    stale.append(self.store.read(name, card.version))  # checks the files against their hashes
                except ToolLibraryError as exc:
                    log.warning("Not indexing %s: %s", name, exc)
            extra = sorted(set(have) - set(wanted))
            if extra:
                self.index.delete(extra)
            if stale:
                self.index.upsert([self._entry(m, IndexEntry) for m in stale])
            if stale or extra:
                log.info("Index brought in line with the files: %d upserted, %d deleted", len(stale), len(extra))
            self._seen_generation = generation
        return IndexSync(upserted=sorted(m.name for m in stale), deleted=extra)

    def _catch_up(self) -> None:
        """Bring the index in line with changes other processes committed since this one last looked: read
        what they wrote to the index, then fix from the files whatever still differs. Costs one small file
        read when nothing changed."""
        if self.store.generation() == self._seen_generation:
            return
        with self._index_lock:
            if self.store.generation() == self._seen_generation:  # another thread caught up meanwhile
                return
            refresh = getattr(self.index, "refresh", None)
            if callable(refresh):
                refresh()
            self.sync_index()

    def reindex(self) -> int:
        """Rebuild the whole index from the files; return the number of tools indexed."""
        self.index.clear()
        return len(self.sync_index().upserted)

    @staticmethod
    def _entry(manifest: ToolManifest, entry_type: Any) -> Any:
        return entry_type(
            name=manifest.name,
            version=manifest.version,
            signature=manifest.signature,
            description=manifest.description,
            content_hash=index_hash(manifest),
        )

    def _reindex_tool(self, name: str) -> None:
        """Bring one tool's index entry in line with its files (called under the lock after a change)."""
        from tools_library.retrieval import IndexEntry

        state = self.store.state(name)
        if state["status"] == "retired":
            self.index.delete([name])
        else:
            self.index.upsert([self._entry(self.store.read(name), IndexEntry)])

    def search(self, query: str, k: int | None = None) -> list[SearchHit]:
        """Hybrid search over active tools, best first. It sees every tool committed (by any process) before
        it began: it first catches up with the store's generation. A query over Settings.max_request_chars
        (or empty, or a bad k) raises SearchQueryError, a ValueError with one sentence, before any work."""
        from tools_library.retrieval import check_request_length

        check_request_length(query, self.settings.max_request_chars)
        self._catch_up()
        return self.index.search(query, k=k or self.settings.retrieve_k)

    def reuse_decision(self, hits: list[SearchHit]) -> ReuseDecision:
        """The calibrated reuse-or-create signal for a search's hits."""
        return self.index.reuse_decision(hits)

    # ---- reading --------------------------------------------------------------------------------

    def get(self, name: str, version: int | None = None) -> ToolManifest:
        """A tool's active version, or a given version; ToolNotFoundError / ToolRetiredError."""
        validate_tool_name(name)
        if version is None and self.store.state(name)["status"] == "retired":
            raise ToolRetiredError(
                f"Tool {name!r} is retired; roll it back to a version (`rollback {name} N`) to use it again."
            )
        return self.store.read(name, version)

    def list_tools(self, include_retired: bool = False) -> list[ToolManifest]:
        """The active version of every tool, sorted by name (retired tools only when asked)."""
        tools = []
        for name in self.store.names():
            try:
                manifest = self.store.read(name)
            except ToolLibraryError as exc:
                log.warning("Skipping tool %s: %s", name, exc)
                continue
            if include_retired or manifest.status == "active":
                tools.append(manifest)
        return tools

    def versions(self, name: str) -> list[ToolManifest]:
        """Every stored version of a tool, oldest first; `current` marks the active one."""
        validate_tool_name(name)
        numbers = self.store.version_numbers(name)
        if not numbers:
            raise ToolNotFoundError(f"There is no tool named {name!r} in the library.")
        return [self.store.read(name, n) for n in numbers]

    def diff(self, name: str, a: int, b: int) -> str:
        """A unified diff of signature, description, code and tests between versions `a` and `b`."""
        validate_tool_name(name)
        return diff_versions(self.store.read(name, a), self.store.read(name, b))

    # ---- writing --------------------------------------------------------------------------------

    def register(self, draft: ToolDraft, *, allow_duplicate: bool = False) -> ToolManifest:
        """Verify a tool in the sandbox, store it as its name's next version and make it active.

        The library runs the draft's tests against its code in the sandbox itself and stores that report:
        whatever `draft.verification` claims, only the library's own passing run lets a version in (the
        caller's notes, such as the red phase or repairs, are kept beside it). Idempotent: the same code
        and tests under the same name return the stored version, without a sandbox run. A new name whose
        tool is a twin of an existing one raises DuplicateToolError unless `allow_duplicate`; the twin
        check and the write happen together under the library's lock. NotVerifiedError if the tests
        do not pass.
        """
        check_draft(draft)
        existing = self.store.find_by_content(draft.name, draft.code, draft.tests)
        if existing is not None:
            return self.store.read(draft.name, existing)
        vector = None
        if not allow_duplicate:  # fail fast, before the sandbox run; decided again under the lock
            vector = self._refuse_twin(draft)
        manifest, _created = self._commit(self._verify(draft), allow_duplicate=allow_duplicate, vector=vector)
        return manifest

    def _verify(self, draft: ToolDraft) -> _Verified:
        """Run the draft's tests against its code in the sandbox; NotVerifiedError unless they all pass.

        The report stored with the version is this run's, bound to the sha256 of the code and tests it
        ran on; of the caller's `verification` only notes that are not report fields are kept.
        """
        code, tests = draft.code, draft.tests  # the exact texts sent to the sandbox are the ones stored
        # Red and green at once: the tests against a stub that raises NotImplementedError, and against the code.
        with ThreadPoolExecutor(max_workers=2) as runs:
            red_run = runs.submit(self.sandbox.run_tests, make_stub(draft.name, draft.signature), tests)
            report = self.sandbox.run_tests(code, tests)
            red = red_run.result()
        data = report.model_dump(mode="json")
        if report.verdict != "passed" or report.passed < 1:
            raise NotVerifiedError(
                f"Tool {draft.name!r} failed verification in the sandbox ({report.verdict}: "
                f"{report.passed} passed, {report.failed} failed, {report.errors} errors): {report.message}",
                data,
            )
        passing_on_stub = [t.name for t in red.tests if t.outcome == "passed"]
        if passing_on_stub or red.verdict == "passed":
            raise NotVerifiedError(
                f"Tool {draft.name!r} failed verification in the sandbox: its tests pass against a stub that "
                f"raises NotImplementedError, so they check nothing ({', '.join(passing_on_stub) or 'all'}).",
                {"red": red.model_dump(mode="json")},
            )
        data["red"] = {
            "verdict": red.verdict, "passed": red.passed, "failed": red.failed, "errors": red.errors,
            "collected": red.collected,
        }
        for stream in ("stdout", "stderr"):
            data[stream] = data.get(stream, "")[-_REPORT_STREAM_CHARS:]
        # The caller's notes (the graph's red phase, repairs, test revisions) first, so that every field of
        # the library's own report, and the binding to the content, overwrite whatever the caller claimed.
        verification = {
            **draft.verification,
            **data,
            "verified_by": "library",
            "code_sha256": sha256_text(code),
            "tests_sha256": sha256_text(tests),
        }
        provenance = draft.provenance.model_copy(update={"sandbox_image_id": report.image_id})
        verified = draft.model_copy(
            update={"code": code, "tests": tests, "verification": verification, "provenance": provenance}
        )
        return _Verified(verified, content_hash(code, tests))

    def _commit(
        self, verified: _Verified, *, allow_duplicate: bool = False, vector: list[float] | None = None
    ) -> tuple[ToolManifest, bool]:
        """Store a draft the library verified; return its manifest and whether a version was written.

        Under the lock, so that a concurrent writer cannot slip in between: the content is looked up again
        (idempotence), the twin check is made against the tools on disk now, and the version is added.
        `vector`: the description's embedding, if the caller has it already.
        """
        if not isinstance(verified, _Verified) or verified.content != content_hash(
            verified.draft.code, verified.draft.tests
        ):
            raise NotVerifiedError("A tool not verified by this library was offered for storage; nothing was stored.")
        draft = verified.draft
        with self.store.locked():
            existing = self.store.find_by_content(draft.name, draft.code, draft.tests)
            if existing is not None:
                return self.store.read(draft.name, existing), False
            if not allow_duplicate:
                self._refuse_twin(draft, vector)
            before = self.store.generation()
            manifest, created = self.store.add_version(draft)
            if created:
                self._index_after_write(manifest.name, before)
        return manifest, created

    def _refuse_twin(self, draft: ToolDraft, vector: list[float] | None = None) -> list[float] | None:
        """DuplicateToolError if a draft for a new name is the twin of an existing active tool.

        Returns the description's embedding if it was computed (only when a same-signature tool exists).
        """
        if self.store.version_numbers(draft.name):
            return vector  # a new version of an existing tool is never a twin
        twin, similarity, vector = self._closest_twin(draft, vector=vector)
        if twin is not None and similarity >= self.settings.duplicate_similarity:
            raise DuplicateToolError(
                f"Tool {draft.name!r} duplicates the existing tool {twin.name!r} (same signature, "
                f"similar description); add a version of {twin.name!r} instead, or allow the duplicate.",
                twin,
                similarity,
            )
        return vector

    def _index_after_write(self, name: str, generation_before: int) -> None:
        """Index a change this library just committed (under the store's lock)."""
        # The files are committed; a failing index is repaired by the next search's or open's sync.
        with self._index_lock:
            try:
                self._reindex_tool(name)
            except Exception as exc:
                log.warning("Index not updated for %s (the next sync repairs it): %s", name, exc)
                return
            if generation_before == self._seen_generation:  # nobody else wrote since we last caught up
                self._seen_generation = self.store.generation()

    def find_duplicate(self, draft: ToolDraft) -> ToolManifest | None:
        """An active tool under another name with the same signature types and a very similar description.

        Advisory (no lock is held): `register` makes the same check again under the lock before writing.
        """
        twin, similarity, _ = self._closest_twin(draft)
        return twin if twin is not None and similarity >= self.settings.duplicate_similarity else None

    def _closest_twin(
        self, draft: ToolDraft, *, vector: list[float] | None = None
    ) -> tuple[ToolManifest | None, float, list[float] | None]:
        """The active tool under another name with the same signature types and the closest description,
        its cosine, and the draft description's embedding (`vector` if given; None if not needed)."""
        wanted = normalised_signature(draft.signature, draft.code, draft.name)
        if wanted is None:
            return None, 0.0, vector
        # The embedding cannot tell a direction: "Celsius to Fahrenheit" and "Fahrenheit to Celsius" score
        # 0.994. So twins must also share parameter names, and names that are the same words in another
        # order (celsius_to_fahrenheit, fahrenheit_to_celsius) are never twins.
        wanted_params = parameter_names(draft.signature, draft.code, draft.name)
        candidates = []
        for card in self.store.active_cards():
            if (
                card.name != draft.name
                and normalised_signature(card.signature) == wanted
                and parameter_names(card.signature) == wanted_params
                and not _reordered_names(card.name, draft.name)
            ):
                try:
                    candidates.append(self.store.read(card.name, card.version))
                except ToolLibraryError as exc:
                    log.warning("Skipping %s in the twin check: %s", card.name, exc)
        if not candidates:
            return None, 0.0, vector
        if vector is None:
            vector = self.embeddings.embed_documents([draft.description])[0]
        vectors = self.embeddings.embed_documents([m.description for m in candidates])
        best, best_score = None, -1.0
        for manifest, candidate in zip(candidates, vectors, strict=True):
            score = _cosine(vector, candidate)
            if score > best_score:
                best, best_score = manifest, score
        return best, best_score, vector

    def rollback(self, name: str, version: int) -> ToolManifest:
        """Make a stored version the active one (also brings a retired tool back)."""
        validate_tool_name(name)
        with self.store.locked():
            before = self.store.generation()
            manifest = self.store.set_active(name, version)
            self._index_after_write(name, before)
        return manifest

    def retire(self, name: str) -> ToolManifest:
        """Take a tool out of search; its versions stay on disk and `rollback` brings it back."""
        validate_tool_name(name)
        with self.store.locked():
            before = self.store.generation()
            manifest = self.store.set_status(name, "retired")
            self._index_after_write(name, before)
        return manifest

    def record_usage(self, name: str, version: int, ok: bool) -> None:
        """Count one call of a tool version (and whether it failed)."""
        validate_tool_name(name)
        self.store.record_usage(name, version, ok)

    def verify(self, name: str, version: int | None = None) -> TestReport:
        """Run a stored version's tests against its code in the sandbox."""
        manifest = self.store.read(validate_tool_name(name), version)
        return self.sandbox.run_tests(manifest.code, manifest.tests)

    def version_path(self, name: str, version: int | None = None) -> Path:
        """The folder of a stored version: `pytest` there runs its tests against its code."""
        number = self.store.state(name)["active"] if version is None else version
        self.store.read(name, number)  # raises for an unknown or corrupt version
        return self.store.version_path(name, number)

    # ---- packs and seeds --------------------------------------------------------------------------

    def export_pack(self, path: str | Path, names: list[str] | None = None) -> list[ToolManifest]:
        """Write the active version of the named tools (default: every active tool) to a pack file."""
        manifests = [self.store.read(validate_tool_name(n)) for n in names] if names else self.list_tools()
        write_pack(Path(path), manifests)
        return manifests

    def import_pack(self, path: str | Path) -> PackReport:
        """Import a pack: check it, re-verify every tool in the sandbox, register those that pass."""
        return PackReport(path=str(path), results=self._install(read_pack(Path(path)), source="import"))

    def seed(self) -> PackReport:
        """Install the starter tools, each verified in the sandbox; running it again changes nothing."""
        from tools_library.seeds import seed_drafts

        return PackReport(path="seeds", results=self._install(seed_drafts(), source="seed"))

    def _install(self, drafts: list[ToolDraft], *, source: str) -> list[InstallResult]:
        """Register the drafts through the same verify-then-commit path as `register`.

        The sandbox runs of the drafts not yet present go in parallel (up to `SEA_SANDBOX_POOL_SIZE`); the
        commits follow one by one in the drafts' order, each under the lock like any registration.
        """
        results: dict[str, InstallResult] = {}
        to_verify: list[ToolDraft] = []
        for draft in drafts:
            existing = self.store.find_by_content(draft.name, draft.code, draft.tests)
            if existing is not None:
                results[draft.name] = InstallResult(
                    name=draft.name, version=existing, outcome="unchanged", reason="already present"
                )
                continue
            try:
                check_draft(draft)
            except InvalidToolError as exc:
                results[draft.name] = InstallResult(name=draft.name, outcome="refused", reason=str(exc))
                continue
            # An exporter's report and image are its own claims: the library's run replaces them.
            provenance = draft.provenance.model_copy(update={"source": source, "sandbox_image_id": ""})
            to_verify.append(draft.model_copy(update={"provenance": provenance, "verification": {}}))

        def verify(draft: ToolDraft) -> _Verified | NotVerifiedError:
            try:
                return self._verify(draft)
            except NotVerifiedError as exc:
                return exc

        workers = max(1, min(len(to_verify), self.settings.sandbox_pool_size))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sea-library-verify") as pool:
            outcomes = list(pool.map(verify, to_verify))
        for draft, outcome in zip(to_verify, outcomes, strict=True):
            if isinstance(outcome, NotVerifiedError):
                results[draft.name] = InstallResult(name=draft.name, outcome="refused", reason=str(outcome))
                continue
            try:
                manifest, created = self._commit(outcome)
            except DuplicateToolError as exc:
                results[draft.name] = InstallResult(name=draft.name, outcome="refused", reason=str(exc))
                continue
            results[draft.name] = InstallResult(
                name=draft.name,
                version=manifest.version,
                outcome="installed" if created else "unchanged",
                reason="" if created else "already present",
            )
        return [results[d.name] for d in drafts]


def check_draft(draft: ToolDraft) -> None:
    """Refuse code and tests that cannot make a tool: not Python, or no top-level function `draft.name`."""
    for label, source in (("code", draft.code), ("tests", draft.tests)):
        try:
            ast.parse(source)
        except SyntaxError as exc:
            raise InvalidToolError(
                f"The {label} of tool {draft.name!r} is not valid Python (line {exc.lineno}: {exc.msg})."
            ) from exc
    if _find_function(draft.code, draft.name) is None:
        raise InvalidToolError(f"The code of tool {draft.name!r} defines no top-level function {draft.name}().")


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm_a = sum(x * x for x in a) ** 0.5
    norm_b = sum(y * y for y in b) ** 0.5
    return dot / (norm_a * norm_b) if norm_a and norm_b else 0.0
