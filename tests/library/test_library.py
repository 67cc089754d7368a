"""ToolLibrary against the real Chroma index, the real embedding model and the real sandbox (`register` runs
every new version's tests in it)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from library_helpers import ROOT, make_draft, run_python

from sea.settings import Settings
from tools_library import (
    CorruptToolError,
    DuplicateToolError,
    InvalidToolError,
    NotVerifiedError,
    ToolLibrary,
    ToolNotFoundError,
    ToolRetiredError,
)
from tools_library.library import index_hash, normalised_signature
from tools_library.seeds import seed_drafts
from tools_library.store import STATE_FILE, sha256_text

pytestmark = [pytest.mark.docker]

SUM_TESTS = "from tool import add_numbers\n\n\ndef test_sum():\n    assert add_numbers(2, 3) == 5\n"
# Subprocesses that register verify in a sandbox of their own: one warm container, or none when they get killed.
ONE_CONTAINER = {"SEA_SANDBOX_POOL_SIZE": "1"}
NO_POOL = {"SEA_SANDBOX_POOL_SIZE": "0"}


@pytest.fixture
def library(sea_home: Settings, sandbox):
    lib = ToolLibrary.open(sea_home, sandbox)
    yield lib
    lib.close()


@pytest.fixture
def seeded(seeded_home: Settings, sandbox):
    lib = ToolLibrary.open(seeded_home, sandbox)
    yield lib
    lib.close()


def test_register_then_search_and_get(seeded: ToolLibrary) -> None:
    hits = seeded.search("What is 15 percent of 300?")
    assert hits[0].name == "calculate_percentage" and hits[0].version == 1 and hits[0].rank == 1
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert seeded.search("convert 20 degrees celsius into fahrenheit")[0].name == "celsius_to_fahrenheit"
    manifest = seeded.get("calculate_percentage")
    assert manifest.version == 1 and manifest.status == "active"
    assert "def calculate_percentage" in manifest.code
    assert seeded.index.indexed()["calculate_percentage"] == index_hash(manifest)
    assert {m.name for m in seeded.list_tools()} == {d.name for d in seed_drafts()}


def test_register_is_idempotent_and_keeps_the_index_in_step(seeded: ToolLibrary) -> None:
    draft = seed_drafts()[0]
    again = seeded.register(draft)
    assert again.version == 1
    assert seeded.store.version_numbers(draft.name) == [1]
    assert len(seeded.index.indexed()) == len(seed_drafts())


def test_a_claimed_report_is_never_trusted(library: ToolLibrary, sandbox) -> None:
    # The caller's report says 4 of 4 passed, with the right hashes; the library's own run says otherwise.
    lying = make_draft("add_numbers", body="return 'PWNED'", tests=SUM_TESTS)
    code_sha, tests_sha = sha256_text(lying.code), sha256_text(lying.tests)
    lying.verification = {"verdict": "passed", "passed": 4, "failed": 0, "verified_by": "library",
                          "code_sha256": code_sha, "tests_sha256": tests_sha}
    refused = r"failed verification in the sandbox \(failed: 0 passed, 1 failed"
    with pytest.raises(NotVerifiedError, match=refused) as caught:
        library.register(lying)
    assert caught.value.report["verdict"] == "failed"
    assert library.store.names() == [] and library.index.indexed() == {}

    # Tests that pass against a stub raising NotImplementedError check nothing: the library's red run refuses them.
    hollow = "from tool import add_numbers\n\n\ndef test_sum():\n    assert True\n\n\ndef test_real():\n" \
        "    assert add_numbers(2, 3) == 5\n"
    with pytest.raises(NotVerifiedError, match=r"pass against a stub .* check nothing \(test_tool.py::test_sum\)"):
        library.register(make_draft("add_numbers", tests=hollow))
    assert library.store.names() == [] and library.index.indexed() == {}

    # A test file without tests passes nothing, so it proves nothing.
    with pytest.raises(NotVerifiedError, match="failed verification"):
        library.register(make_draft("add_numbers", tests="from tool import add_numbers\n"))
    assert library.store.names() == []

    # No claim at all: the library's run decides, and its report is the one stored.
    manifest = library.register(make_draft("add_numbers", tests=SUM_TESTS, verified=False))
    ver = manifest.verification
    assert (ver["verdict"], ver["passed"], ver["failed"], ver["verified_by"]) == ("passed", 1, 0, "library")
    assert (ver["red"]["passed"], ver["red"]["failed"]) == (0, 1)  # and the same tests failed on the stub
    assert [t["outcome"] for t in ver["tests"]] == ["passed"]
    assert (ver["code_sha256"], ver["tests_sha256"]) == (sha256_text(manifest.code), sha256_text(manifest.tests))
    assert ver["image_id"] == manifest.provenance.sandbox_image_id == sandbox.image_id()

    # A caller's counts and image are overwritten by the library's run; its other notes are kept beside it.
    noted = make_draft("add_numbers", body="return b + a", tests=SUM_TESTS).model_copy(
        update={"verification": {"verdict": "passed", "passed": 99, "image_id": "sha256:forged", "repairs": 2}}
    )
    again = library.register(noted)
    assert again.version == 2
    assert (again.verification["passed"], again.verification["repairs"]) == (1, 2)
    assert again.verification["image_id"] == again.provenance.sandbox_image_id == sandbox.image_id()


def test_invalid_drafts_are_refused_before_the_sandbox(library: ToolLibrary) -> None:
    no_function = make_draft("add_numbers").model_copy(update={"code": "def other(a, b):\n    return a\n"})
    with pytest.raises(InvalidToolError, match="defines no top-level function add_numbers"):
        library.register(no_function)
    broken = make_draft("add_numbers").model_copy(update={"code": "def add_numbers(a, b)\n    return a\n"})
    with pytest.raises(InvalidToolError, match="not valid Python"):
        library.register(broken)
    assert library.store.names() == [] and library.index.indexed() == {}


def test_an_identical_version_is_returned_without_a_sandbox_run(seeded_home: Settings) -> None:
    """Idempotence needs no sandbox: a library whose sandbox cannot start still returns the stored version."""
    from sandbox import Sandbox, SandboxError

    broken = Sandbox(Settings(home=seeded_home.home, sandbox_image="sea-sandbox-missing:never-built"), pool_size=0)
    lib = ToolLibrary.open(seeded_home, broken)
    try:
        draft = next(d for d in seed_drafts() if d.name == "word_count")
        assert lib.register(draft).version == 1
        with pytest.raises(SandboxError, match="sea-sandbox-missing:never-built"):
            lib.register(draft.model_copy(update={"code": draft.code + "# changed\n"}))
        assert lib.store.version_numbers("word_count") == [1]
    finally:
        lib.close(close_sandbox=True)


def test_versions_rollback_retire_and_the_index_follows(library: ToolLibrary) -> None:
    v1 = library.register(make_draft("add_numbers", description="Add two numbers together."))
    v2 = library.register(
        make_draft("add_numbers", body="return float(a + b)", description="Add two numbers and return a float.")
    )
    assert (v1.version, v2.version) == (1, 2)
    assert library.search("add two numbers")[0].version == 2
    versions = library.versions("add_numbers")
    assert [m.version for m in versions] == [1, 2] and [m.current for m in versions] == [False, True]

    library.rollback("add_numbers", 1)
    assert library.get("add_numbers").version == 1
    assert library.search("add two numbers")[0].version == 1
    assert library.index.indexed()["add_numbers"] == index_hash(library.get("add_numbers"))

    library.retire("add_numbers")
    with pytest.raises(ToolRetiredError, match="retired"):
        library.get("add_numbers")
    assert library.get("add_numbers", 2).version == 2  # an explicit version is still readable
    assert "add_numbers" not in library.index.indexed()
    assert all(h.name != "add_numbers" for h in library.search("add two numbers"))
    assert library.list_tools() == [] and len(library.list_tools(include_retired=True)) == 1

    library.rollback("add_numbers", 2)  # brings it back
    assert library.get("add_numbers").version == 2
    assert library.search("add two numbers")[0].name == "add_numbers"


def test_diff_between_versions(library: ToolLibrary) -> None:
    library.register(make_draft("add_numbers", description="Add two numbers."))
    library.register(make_draft("add_numbers", body="return b + a", description="Add two numbers, b first."))
    text = library.diff("add_numbers", 1, 2)
    assert "-    return a + b" in text and "+    return b + a" in text and "+Add two numbers, b first." in text
    with pytest.raises(ToolNotFoundError, match="no version 3"):
        library.diff("add_numbers", 1, 3)


def test_unknown_tools_and_versions(library: ToolLibrary) -> None:
    with pytest.raises(ToolNotFoundError, match="no tool named 'missing_tool'"):
        library.get("missing_tool")
    with pytest.raises(ToolNotFoundError):
        library.versions("missing_tool")
    with pytest.raises(ToolNotFoundError):
        library.rollback("missing_tool", 1)
    with pytest.raises(ToolNotFoundError):
        library.retire("missing_tool")


def test_usage_statistics(seeded: ToolLibrary) -> None:
    seeded.record_usage("word_count", 1, ok=True)
    seeded.record_usage("word_count", 1, ok=False)
    usage = seeded.get("word_count").usage
    assert (usage.calls, usage.failures) == (2, 1) and usage.last_used is not None
    assert seeded.get("is_palindrome").usage.calls == 0


def test_a_twin_under_a_new_name_is_flagged(seeded: ToolLibrary) -> None:
    twin = make_draft(
        "convert_celsius_to_fahrenheit",
        params="celsius: float",
        body="return celsius * 1.8 + 32",
        description="Convert a temperature in Celsius degrees to Fahrenheit degrees.",
    )
    found = seeded.find_duplicate(twin)
    assert found is not None and found.name == "celsius_to_fahrenheit"
    with pytest.raises(DuplicateToolError, match="celsius_to_fahrenheit") as caught:
        seeded.register(twin)
    assert caught.value.existing.name == "celsius_to_fahrenheit" and caught.value.similarity >= 0.9
    assert "convert_celsius_to_fahrenheit" not in seeded.store.names()
    # The caller may insist, or add a version of the existing tool instead.
    assert seeded.register(twin, allow_duplicate=True).version == 1


def test_not_twins_same_types_other_meaning_or_direction(seeded: ToolLibrary) -> None:
    vowels = make_draft(
        "count_vowels", params="text: str", returns="int", body="return sum(c in 'aeiou' for c in text)",
        description="Count the vowels in a text.",
    )
    assert seeded.find_duplicate(vowels) is None
    reverse = make_draft(
        "fahrenheit_to_celsius", params="fahrenheit: float", body="return (fahrenheit - 32) / 1.8",
        description="Convert a temperature from degrees Fahrenheit to degrees Celsius.",
    )
    assert seeded.find_duplicate(reverse) is None
    assert seeded.register(reverse).version == 1
    other_types = make_draft(
        "percent_text", params="value: str, percent: str", returns="str", body="return value",
        description="Calculate a percentage of a number: returns percent percent of value.",
    )
    assert seeded.find_duplicate(other_types) is None


@pytest.mark.parametrize("damage", ["a JSON array", "provenance a string"])
def test_a_damaged_manifest_is_skipped_and_the_rest_keeps_working(seeded: ToolLibrary, damage: str, caplog) -> None:
    manifest_file = seeded.store.version_path("word_count", 1) / "manifest.json"
    meta = json.loads(manifest_file.read_text())
    manifest_file.write_text("[1, 2, 3]" if damage == "a JSON array" else json.dumps({**meta, "provenance": "x"}))
    with caplog.at_level("WARNING"):
        names = {m.name for m in seeded.list_tools()}
        sync = seeded.sync_index()
    assert names == {d.name for d in seed_drafts()} - {"word_count"}
    assert "word_count" in caplog.text
    assert sync.deleted == ["word_count"] and "word_count" not in seeded.index.indexed()
    assert seeded.search("What is 15 percent of 300?")[0].name == "calculate_percentage"
    with pytest.raises(CorruptToolError, match="word_count"):
        seeded.get("word_count")
    # A fresh open (what `python -m graph ask` does first) and a twin check over the damaged tool work too.
    reopened = ToolLibrary.open(seeded.settings, seeded.sandbox)
    try:
        assert reopened.search("count the words in this sentence")
        counter = make_draft("count_words_in", params="text: str", returns="int", body="return len(text.split())",
                             description="Count the words in a text.")
        assert reopened.find_duplicate(counter) is None
    finally:
        reopened.close()


def test_normalised_signature_ignores_names_and_typing_spellings() -> None:
    a = normalised_signature("def f(items: List[int], n: Optional[int] = None) -> Dict[str, int]")
    b = normalised_signature("def g(values: list[int], k: int | None) -> dict[str, int]")
    assert a == b == (("list[int]", "int|none"), "dict[str,int]")
    assert normalised_signature("not python at all") is None


def test_open_repairs_an_index_that_disagrees_with_the_files(seeded_home: Settings) -> None:
    sea_home = seeded_home
    lib = ToolLibrary.open(sea_home)
    # Change the files behind the index's back: retire one tool, roll another forward by a new version.
    lib.store.set_status("word_count", "retired")
    lib.store.add_version(make_draft("is_palindrome", params="text: str", returns="bool", body="return True"))
    lib.close()

    reopened = ToolLibrary.open(sea_home)
    try:
        indexed = reopened.index.indexed()
        assert "word_count" not in indexed
        assert indexed["is_palindrome"] == index_hash(reopened.get("is_palindrome"))
        assert reopened.get("is_palindrome").version == 2
        assert reopened.sync_index().upserted == []  # nothing left to repair
    finally:
        reopened.close()


def test_index_rebuilt_after_its_folder_is_deleted(seeded_home: Settings) -> None:
    sea_home = seeded_home
    shutil.rmtree(sea_home.index_dir)
    assert not sea_home.index_dir.exists()
    # A new process, as after a user deletes the folder (Chroma caches an open client per path per process).
    check = (
        "import json\nfrom tools_library import ToolLibrary\nlib = ToolLibrary.open()\n"
        "first = sorted(lib.index.indexed())\n"
        "hit = lib.search('What is 15 percent of 300?')[0].name\n"
        "count = lib.reindex()\n"
        "again = lib.search('how many days between two dates')[0].name\n"
        "print(json.dumps([first, hit, count, again]))\n"
    )
    done = run_python(check, {"SEA_HOME": str(sea_home.home)})
    assert done.returncode == 0, done.stderr
    first, hit, count, again = json.loads(done.stdout.strip().splitlines()[-1])
    assert first == sorted(d.name for d in seed_drafts())
    assert hit == "calculate_percentage" and count == len(seed_drafts()) and again == "days_between_dates"
    assert sea_home.index_dir.is_dir()


def test_stored_version_path_is_runnable(seeded: ToolLibrary) -> None:
    folder = seeded.version_path("word_count")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=folder,
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0 and "3 passed" in done.stdout


_LIB_WRITER = """
import sys, time
sys.path.insert(0, {tests_dir!r})
from library_helpers import make_draft
from tools_library import ToolLibrary
lib = ToolLibrary.open()
while time.time() < {start}:
    time.sleep(0.001)
for name, params, body in {jobs!r}:
    manifest = lib.register(make_draft(name, params=params, body=body, description="Tool " + name + " " + body))
    print(name, manifest.version, flush=True)
lib.close()
"""


def test_two_processes_register_through_the_library(sea_home: Settings) -> None:
    import os

    start = time.time() + 6.0  # both have loaded the model and opened Chroma by then
    # Different parameter types per tool name, so no tool is flagged as another's twin.
    jobs_a = [("shared_tool", "a: float, b: float", f"return a + {i}") for i in range(4)]
    jobs_a += [("only_in_a", "a: int", f"return a - {i}") for i in range(3)]
    jobs_b = [("shared_tool", "a: float, b: float", f"return b + {i}") for i in range(4)]
    jobs_b += [("only_in_b", "a: str", f"return a * {i}") for i in range(3)]
    jobs_b += [("shared_tool", "a: float, b: float", "return a + 0")]  # process A's content: no new version
    tests_dir = str(ROOT / "tests" / "library")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _LIB_WRITER.format(tests_dir=tests_dir, start=start, jobs=jobs)],
            cwd=ROOT, env={**os.environ, "SEA_HOME": str(sea_home.home), **ONE_CONTAINER},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for jobs in (jobs_a, jobs_b)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    lib = ToolLibrary.open(sea_home)
    try:
        assert lib.store.names() == ["only_in_a", "only_in_b", "shared_tool"]
        assert lib.store.version_numbers("shared_tool") == list(range(1, 9))
        assert lib.store.version_numbers("only_in_a") == [1, 2, 3] == lib.store.version_numbers("only_in_b")
        codes = [lib.get("shared_tool", n).code for n in range(1, 9)]
        assert len(set(codes)) == 8
        indexed = lib.index.indexed()
        assert set(indexed) == {"only_in_a", "only_in_b", "shared_tool"}
        assert all(indexed[name] == index_hash(lib.get(name)) for name in indexed)
    finally:
        lib.close()


_TWIN_WRITER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests_dir!r})
from library_helpers import make_draft
from tools_library import DuplicateToolError, ToolLibrary
lib = ToolLibrary.open()
lib.embeddings.embed_documents(["warm the model up"])
assert lib.sandbox.warm_up(timeout_s=240), "the sandbox did not warm up"
Path({ready!r}).touch()
while not Path({go!r}).exists():
    time.sleep(0.002)
draft = make_draft({name!r}, params="celsius: float", body="return celsius * 1.8 + 32", description={description!r})
try:
    manifest = lib.register(draft)
    print("registered", manifest.name, flush=True)
except DuplicateToolError as exc:
    print("duplicate", draft.name, exc.existing.name, flush=True)
lib.close(close_sandbox=True)
"""


def test_twins_registered_at_once_by_three_processes_only_one_wins(sea_home: Settings, tmp_path: Path) -> None:
    """The twin check and the write are one step under the library lock: of three twins, exactly one gets in."""
    import os

    twins = [
        ("to_fahrenheit", "Convert a temperature in degrees Celsius to degrees Fahrenheit."),
        ("celsius_in_fahrenheit", "Convert a temperature in Celsius degrees to Fahrenheit degrees."),
        ("fahrenheit_from_celsius", "Converts a temperature in degrees Celsius into degrees Fahrenheit."),
    ]
    go = tmp_path / "go"
    procs, ready = [], []
    for i, (name, description) in enumerate(twins):
        ready.append(tmp_path / f"ready-{i}")
        code = _TWIN_WRITER.format(tests_dir=str(ROOT / "tests" / "library"), ready=str(ready[-1]), go=str(go),
                                   name=name, description=description)
        procs.append(subprocess.Popen(
            [sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "SEA_HOME": str(sea_home.home), **ONE_CONTAINER},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    deadline = time.time() + 300
    while not all(p.exists() for p in ready):
        assert time.time() < deadline and all(proc.poll() is None for proc in procs), "a writer failed to start"
        time.sleep(0.05)
    go.touch()  # all three have passed nothing yet: they register together
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        outcomes.append(out.split())
    winners = [o[1] for o in outcomes if o[0] == "registered"]
    assert len(winners) == 1, outcomes
    assert sorted(o[2] for o in outcomes if o[0] == "duplicate") == [winners[0]] * 2, outcomes
    lib = ToolLibrary.open(sea_home, sync_index=False)
    try:
        assert lib.store.names() == winners
    finally:
        lib.close()


def test_kill_during_registration_then_open(sea_home: Settings, sandbox) -> None:
    lib = ToolLibrary.open(sea_home, sandbox)
    lib.register(make_draft("add_numbers", description="Add two numbers."))
    lib.close()
    snippet = (
        "import sys; sys.path.insert(0, {t!r})\n"
        "from library_helpers import make_draft\nfrom tools_library import ToolLibrary\n"
        "lib = ToolLibrary.open()\n"
        "lib.register(make_draft('add_numbers', body='return a * b', description='Multiply two numbers.'))\n"
    ).format(t=str(ROOT / "tests" / "library"))
    killed = run_python(snippet, {"SEA_HOME": str(sea_home.home), "SEA_LIBRARY_FAULT": "before_rename", **NO_POOL})
    assert killed.returncode == -signal.SIGKILL
    reopened = ToolLibrary.open(sea_home)
    assert reopened.store.version_numbers("add_numbers") == [1]
    assert reopened.get("add_numbers").description == "Add two numbers."
    reopened.close()

    killed = run_python(snippet, {"SEA_HOME": str(sea_home.home), "SEA_LIBRARY_FAULT": "after_rename", **NO_POOL})
    assert killed.returncode == -signal.SIGKILL
    state = (Path(sea_home.tools_dir) / "add_numbers" / STATE_FILE).read_text()
    assert '"active": 1' in state  # the pointer was never moved
    reopened = ToolLibrary.open(sea_home)
    try:
        assert reopened.get("add_numbers").version == 2
        assert reopened.search("multiply two numbers")[0].version == 2  # the index caught up at open
    finally:
        reopened.close()


def test_search_catches_up_with_another_process(seeded: ToolLibrary, sea_home: Settings) -> None:
    assert seeded.search("count the words in this sentence")[0].name == "word_count"
    before = seeded.store.generation()
    change = (
        "import sys; sys.path.insert(0, {t!r})\n"
        "from library_helpers import make_draft\nfrom tools_library import ToolLibrary\n"
        "lib = ToolLibrary.open()\n"
        "lib.register(make_draft('multiply_numbers', body='return a * b', description='Multiply two numbers.'))\n"
        "lib.retire('word_count')\nlib.close()\n"
    ).format(t=str(ROOT / "tests" / "library"))
    done = run_python(change, {"SEA_HOME": str(sea_home.home), **NO_POOL})
    assert done.returncode == 0, done.stderr
    assert seeded.store.generation() == before + 2
    assert seeded.search("multiply two numbers")[0].name == "multiply_numbers"
    assert all(hit.name != "word_count" for hit in seeded.search("count the words in this sentence"))
