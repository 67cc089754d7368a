"""The file store alone: layout, names, atomicity, idempotency, versions, usage, kills and concurrency."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from library_helpers import ROOT, make_draft, run_python
from pydantic import ValidationError

from sea.settings import Settings
from tools_library.models import ToolDraft, ToolNameError, validate_tool_name
from tools_library.seeds import SEEDS_DIR, seed_drafts
from tools_library.store import (
    CODE_FILE,
    MANIFEST_FILE,
    STATE_FILE,
    TESTS_FILE,
    CorruptToolError,
    ToolNotFoundError,
    ToolStore,
    diff_versions,
)

REFUSED_NAMES = [
    "../x",
    "a/b",
    "a\\b",
    "/etc/passwd",
    "os",
    "json",
    "sys",
    "print",
    "__init__",
    "_private",
    "Tool",
    "tool",
    "test",
    "conftest",
    "class",
    "match",
    "",
    " ",
    "x y",
    "a-b",
    "a.b",
    ".hidden",
    "v0001\x00",
    "a" * 1000,
    "a" * 65,
    "naïve",
    "数据",
    "ｆｕｌｌｗｉｄｔｈ",
    "1abc",
    "abc\n",  # `$` matches before a trailing newline: names are checked with fullmatch
    "add_numbers\n",
    "\nadd_numbers",
    "add_numbers\r",
]


@pytest.fixture
def store(sea_home: Settings) -> ToolStore:
    return ToolStore(sea_home.tools_dir)


@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_refused_names_never_reach_the_disk(store: ToolStore, name: str) -> None:
    with pytest.raises(ToolNameError):
        validate_tool_name(name)
    with pytest.raises(ValidationError):
        ToolDraft(**{**make_draft("add_numbers").model_dump(), "name": name})
    with pytest.raises(ToolNameError):
        store.tool_dir(name)
    with pytest.raises(ToolNameError):
        store.state(name)
    assert not any(p.is_dir() for p in store.root.iterdir())


def test_valid_name_is_accepted() -> None:
    assert validate_tool_name("reverse_string") == "reverse_string"
    assert validate_tool_name("a" * 64) == "a" * 64


def test_first_version_layout_and_round_trip(store: ToolStore) -> None:
    draft = make_draft("add_numbers")
    manifest, created = store.add_version(draft)
    assert created and manifest.version == 1 and manifest.status == "active" and manifest.current
    folder = store.root / "add_numbers" / "v0001"
    assert sorted(p.name for p in folder.iterdir()) == sorted([CODE_FILE, TESTS_FILE, MANIFEST_FILE])
    assert (folder / CODE_FILE).read_text() == draft.code
    assert (folder / TESTS_FILE).read_text() == draft.tests
    meta = json.loads((folder / MANIFEST_FILE).read_text())
    assert "code" not in meta and "usage" not in meta and "status" not in meta
    assert len(meta["provenance"]["code_sha256"]) == 64
    again = store.read("add_numbers")
    assert again.code == draft.code and again.description == draft.description
    assert again.provenance.request == "please make add_numbers"
    assert again.verification == {"verdict": "passed", "passed": 1}
    assert not any(p.name.startswith(".tmp-") for p in (store.root / "add_numbers").iterdir())


def test_registration_is_idempotent_by_content(store: ToolStore) -> None:
    first, created = store.add_version(make_draft("add_numbers"))
    # A replayed graph node: same code and tests, another request text and time.
    replay = make_draft("add_numbers").model_copy(update={"description": "changed words"})
    second, created_again = store.add_version(replay)
    assert created and not created_again
    assert second.version == first.version == 1
    assert store.version_numbers("add_numbers") == [1]


def test_new_content_adds_a_version_and_rollback_picks_any(store: ToolStore) -> None:
    store.add_version(make_draft("add_numbers"))
    v2, _ = store.add_version(make_draft("add_numbers", body="return float(a) + float(b)"))
    v3, _ = store.add_version(make_draft("add_numbers", body="return sum((a, b))"))
    assert (v2.version, v3.version) == (2, 3)
    assert store.read("add_numbers").version == 3
    store.set_active("add_numbers", 1)
    current = store.read("add_numbers")
    assert current.version == 1 and current.current and "return a + b" in current.code
    assert not store.read("add_numbers", 3).current
    with pytest.raises(ToolNotFoundError, match="no version 9"):
        store.set_active("add_numbers", 9)
    with pytest.raises(ToolNotFoundError, match="no version 7"):
        store.read("add_numbers", 7)
    # A new registration after a rollback becomes the newest and active version.
    v4, _ = store.add_version(make_draft("add_numbers", body="return b + a"))
    assert v4.version == 4 and store.read("add_numbers").version == 4


def test_retire_and_unretire(store: ToolStore) -> None:
    store.add_version(make_draft("add_numbers"))
    retired = store.set_status("add_numbers", "retired")
    assert retired.status == "retired"
    assert store.state("add_numbers")["status"] == "retired"
    assert store.read("add_numbers").status == "retired"
    store.set_active("add_numbers", 1)
    assert store.read("add_numbers").status == "active"


def test_active_cards_follow_rollback_and_retirement(store: ToolStore) -> None:
    store.add_version(make_draft("add_numbers", description="first"))
    store.add_version(make_draft("add_numbers", body="return b + a", description="second"))
    store.add_version(make_draft("other_tool"))
    store.set_active("add_numbers", 1)
    store.set_status("other_tool", "retired")
    cards = store.active_cards()
    assert [(c.name, c.version, c.description) for c in cards] == [("add_numbers", 1, "first")]
    assert cards[0].code_sha256 == store.read("add_numbers").provenance.code_sha256
    assert [c.name for c in store.active_cards(include_retired=True)] == ["add_numbers", "other_tool"]


def test_a_new_version_of_a_retired_tool_is_active(store: ToolStore) -> None:
    store.add_version(make_draft("add_numbers"))
    store.set_status("add_numbers", "retired")
    generation = store.generation()
    manifest, created = store.add_version(make_draft("add_numbers", body="return b + a"))
    assert created and manifest.version == 2 and manifest.status == "active"
    assert store.state("add_numbers") == {"active": 2, "latest": 2, "status": "active"}
    assert store.generation() == generation + 1
    # Re-registering the retired content returns it without changing anything.
    old, created_again = store.add_version(make_draft("add_numbers"))
    assert not created_again and old.version == 1 and not old.current
    assert store.generation() == generation + 1


def test_unknown_tool(store: ToolStore) -> None:
    with pytest.raises(ToolNotFoundError, match="no tool named 'nothing_here'"):
        store.read("nothing_here")
    assert store.names() == []


def test_usage_statistics_live_beside_the_immutable_version(store: ToolStore) -> None:
    store.add_version(make_draft("add_numbers"))
    manifest_file = store.version_path("add_numbers", 1) / MANIFEST_FILE
    before = manifest_file.read_bytes()
    store.record_usage("add_numbers", 1, ok=True)
    store.record_usage("add_numbers", 1, ok=False)
    stats = store.record_usage("add_numbers", 1, ok=True)
    assert (stats.calls, stats.failures) == (3, 1)
    read = store.read("add_numbers")
    assert (read.usage.calls, read.usage.failures) == (3, 1) and read.usage.last_used is not None
    assert manifest_file.read_bytes() == before
    with pytest.raises(ToolNotFoundError):
        store.record_usage("add_numbers", 2, ok=True)


def test_files_changed_on_disk_are_detected(store: ToolStore) -> None:
    store.add_version(make_draft("add_numbers"))
    (store.version_path("add_numbers", 1) / CODE_FILE).write_text("def add_numbers(a, b):\n    return 0\n")
    with pytest.raises(CorruptToolError, match="changed on disk"):
        store.read("add_numbers")


def test_an_invalid_manifest_is_reported_as_corrupt_and_others_still_read(store: ToolStore) -> None:
    store.add_version(make_draft("add_numbers"))
    store.add_version(make_draft("other_tool"))
    manifest_file = store.version_path("add_numbers", 1) / MANIFEST_FILE
    meta = json.loads(manifest_file.read_text())
    del meta["signature"]
    manifest_file.write_text(json.dumps(meta))
    with pytest.raises(CorruptToolError, match="manifest of version 1 of tool 'add_numbers' is invalid"):
        store.read("add_numbers")
    manifest_file.write_text("{not json")
    with pytest.raises(CorruptToolError, match="unreadable"):
        store.read("add_numbers")
    assert store.read("other_tool").version == 1


# Manifests that parse but are not what a manifest is: each must make its tool unreadable, never the library.
BAD_MANIFESTS = {
    "a JSON array": "[1, 2, 3]",
    "a JSON string": '"manifest"',
    "provenance a string": None,  # filled in from the real manifest below
    "provenance a list": None,
    "nested 200,000 deep": "[" * 200_000 + "]" * 200_000,
    "another tool's name": None,
}


def _bad_manifest(kind: str, meta: dict) -> str:
    if BAD_MANIFESTS[kind] is not None:
        return BAD_MANIFESTS[kind]
    if kind == "another tool's name":
        return json.dumps({**meta, "name": "other_tool"})
    return json.dumps({**meta, "provenance": "trust me" if kind == "provenance a string" else ["x"]})


@pytest.mark.parametrize("kind", list(BAD_MANIFESTS))
def test_a_malformed_manifest_is_skipped_by_every_reader(store: ToolStore, kind: str, caplog) -> None:
    store.add_version(make_draft("add_numbers"))
    store.add_version(make_draft("other_tool"))
    manifest_file = store.version_path("add_numbers", 1) / MANIFEST_FILE
    manifest_file.write_text(_bad_manifest(kind, json.loads(manifest_file.read_text())))
    with pytest.raises(CorruptToolError, match=r"(?i)version 1 of tool 'add_numbers'"):
        store.read("add_numbers")
    with caplog.at_level("WARNING"):
        assert [c.name for c in store.active_cards()] == ["other_tool"]
    assert "add_numbers" in caplog.text  # skipped with a warning, not silently
    assert store.find_by_content("add_numbers", make_draft("add_numbers").code, make_draft("add_numbers").tests) is None
    assert store.read("other_tool").version == 1
    # A new registration of the damaged tool still works: it becomes version 2.
    manifest, created = store.add_version(make_draft("add_numbers", body="return b + a"))
    assert created and manifest.version == 2 and store.read("add_numbers").version == 2


@pytest.mark.parametrize(
    ("state", "usage"),
    [
        ("[1, 2]", "[1, 2]"),
        ('{"active": "1", "latest": [2], "status": 7}', '{"versions": [1]}'),
        ('{"active": true, "latest": null}', '{"versions": {"1": "many"}}'),
        ('{"active": 1, "latest": 1, "status": "retired"}', '{"versions": {"1": {"calls": "x"}}}'),
        ("[" * 100_000 + "]" * 100_000, "{" * 1),
    ],
)
def test_damaged_side_files_do_not_break_reads_or_usage(store: ToolStore, state: str, usage: str) -> None:
    store.add_version(make_draft("add_numbers"))
    (store.tool_dir("add_numbers") / STATE_FILE).write_text(state)
    (store.tool_dir("add_numbers") / "usage.json").write_text(usage)
    current = store.state("add_numbers")
    assert current["active"] == 1 and current["status"] in ("active", "retired")
    manifest = store.read("add_numbers")
    assert manifest.version == 1 and manifest.usage.calls == 0
    assert [c.name for c in store.active_cards(include_retired=True)] == ["add_numbers"]
    stats = store.record_usage("add_numbers", 1, ok=True)  # counting starts again from a damaged file
    assert stats.calls == 1 and store.read("add_numbers").usage.calls == 1


def test_a_folder_that_only_looks_like_a_version_is_not_one(store: ToolStore) -> None:
    store.add_version(make_draft("add_numbers"))
    (store.tool_dir("add_numbers") / "v0002\n").mkdir()
    (store.tool_dir("add_numbers") / "v\u0661\u0662\u0663\u0664").mkdir()  # Arabic-Indic digits 1234
    assert store.version_numbers("add_numbers") == [1]
    assert store.read("add_numbers").version == 1


def test_diff_shows_code_tests_and_description(store: ToolStore) -> None:
    a, _ = store.add_version(make_draft("add_numbers", description="Add two numbers."))
    b, _ = store.add_version(make_draft("add_numbers", body="return b + a", description="Add two numbers, b first."))
    text = diff_versions(a, b)
    assert "--- add_numbers/v1/tool.py" in text and "+++ add_numbers/v2/tool.py" in text
    assert "-    return a + b" in text and "+    return b + a" in text
    assert "-Add two numbers." in text and "+Add two numbers, b first." in text
    assert "test_tool.py" not in text  # the tests did not change
    assert diff_versions(a, a) == ""


def test_orphans_of_interrupted_writes_are_removed_at_recovery(store: ToolStore) -> None:
    store.add_version(make_draft("add_numbers"))
    orphan_version = store.root / "add_numbers" / ".tmp-v0002-dead"
    orphan_version.mkdir()
    (orphan_version / CODE_FILE).write_text("half")
    orphan_state = store.root / "add_numbers" / ".tmp-state.json.dead"
    orphan_state.write_text("{")
    empty_tool = store.root / "never_committed"
    empty_tool.mkdir()
    (empty_tool / ".tmp-v0001-dead").mkdir()
    removed = store.recover()
    assert set(removed) == {orphan_version, orphan_state, empty_tool, empty_tool / ".tmp-v0001-dead"}
    assert not orphan_version.exists() and not empty_tool.exists()
    assert store.names() == ["add_numbers"] and store.read("add_numbers").version == 1


@pytest.mark.parametrize("seed", seed_drafts(), ids=lambda d: d.name)
def test_a_stored_version_folder_is_a_runnable_pytest_unit(store: ToolStore, seed) -> None:
    # Outside Docker only because these are the starter tools we wrote ourselves.
    manifest, _ = store.add_version(seed.model_copy(update={"verification": {"verdict": "passed"}}))
    folder = store.version_path(manifest.name, manifest.version)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=folder, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout


def test_a_broken_stored_version_fails_its_own_pytest(store: ToolStore) -> None:
    tests = "from tool import add_numbers\n\n\ndef test_sum():\n    assert add_numbers(2, 2) == 4\n"
    manifest, _ = store.add_version(make_draft("add_numbers", body="return a - b", tests=tests))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=store.version_path("add_numbers", manifest.version), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1 and "1 failed" in done.stdout


def test_seed_folders_match_their_meta() -> None:
    drafts = seed_drafts()
    names = {d.name for d in drafts}
    assert "calculate_percentage" in names and "reverse_string" not in names
    assert 5 <= len(drafts) <= 7
    for draft in drafts:
        assert (SEEDS_DIR / draft.name / CODE_FILE).read_text() == draft.code
        assert draft.signature.startswith(f"def {draft.name}(")
        assert draft.parameters_schema["type"] == "object" and draft.returns_schema


# ---- processes: kills and concurrency ---------------------------------------------------------------

_REGISTER_SNIPPET = """
import sys
sys.path.insert(0, {tests_dir!r})
from library_helpers import make_draft
from sea.settings import get_settings
from tools_library.store import ToolStore
store = ToolStore(get_settings().tools_dir)
manifest, created = store.add_version(make_draft({name!r}, body={body!r}))
print(manifest.version, created)
"""


def _register_in_process(sea_home: Settings, name: str, body: str, **env: str) -> subprocess.CompletedProcess[str]:
    code = _REGISTER_SNIPPET.format(tests_dir=str(ROOT / "tests" / "library"), name=name, body=body)
    return run_python(code, {"SEA_HOME": str(sea_home.home), **env})


def test_kill_before_the_rename_leaves_the_old_state(store: ToolStore, sea_home: Settings) -> None:
    store.add_version(make_draft("add_numbers"))
    done = _register_in_process(
        sea_home, "add_numbers", "return 2 * a + b", SEA_LIBRARY_FAULT="before_rename"
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    leftovers = [p for p in (store.root / "add_numbers").iterdir() if p.name.startswith(".tmp-")]
    assert leftovers, "the killed writer should have left its temp folder behind"
    fresh = ToolStore(store.root)
    fresh.recover()
    assert fresh.version_numbers("add_numbers") == [1]
    assert fresh.read("add_numbers").code == make_draft("add_numbers").code
    assert not [p for p in (store.root / "add_numbers").iterdir() if p.name.startswith(".tmp-")]


def test_kill_after_the_rename_leaves_the_new_state(store: ToolStore, sea_home: Settings) -> None:
    store.add_version(make_draft("add_numbers"))
    state_before = (store.root / "add_numbers" / STATE_FILE).read_text()
    done = _register_in_process(sea_home, "add_numbers", "return 2 * a + b", SEA_LIBRARY_FAULT="after_rename")
    assert done.returncode == -signal.SIGKILL, done.stderr
    # The pointer was never updated, yet the committed version is whole and is the active one.
    assert (store.root / "add_numbers" / STATE_FILE).read_text() == state_before
    fresh = ToolStore(store.root)
    fresh.recover()
    assert fresh.version_numbers("add_numbers") == [1, 2]
    current = fresh.read("add_numbers")
    assert current.version == 2 and "2 * a + b" in current.code
    assert fresh.read("add_numbers", 1).code == make_draft("add_numbers").code


def test_kill_of_a_first_registration_leaves_no_tool(store: ToolStore, sea_home: Settings) -> None:
    done = _register_in_process(sea_home, "brand_new", "return a", SEA_LIBRARY_FAULT="before_rename")
    assert done.returncode == -signal.SIGKILL
    fresh = ToolStore(store.root)
    fresh.recover()
    assert fresh.names() == [] and not (store.root / "brand_new").exists()


_STRESS_SNIPPET = """
import sys, time
sys.path.insert(0, {tests_dir!r})
from library_helpers import make_draft
from sea.settings import get_settings
from tools_library.store import ToolStore
store = ToolStore(get_settings().tools_dir)
while time.time() < {start}:
    time.sleep(0.001)
for body in {bodies!r}:
    manifest, created = store.add_version(make_draft({name!r}, body=body))
    print(manifest.version, int(created), flush=True)
"""


def _start_writers(sea_home: Settings, jobs: list[tuple[str, list[str]]]) -> list[str]:
    import os
    import time

    start = time.time() + 2.0  # both processes are up and importing by then; they start writing together
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _STRESS_SNIPPET.format(
                tests_dir=str(ROOT / "tests" / "library"), start=start, bodies=bodies, name=name)],
            cwd=ROOT, env={**os.environ, "SEA_HOME": str(sea_home.home)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, bodies in jobs
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        outputs.append(out)
    return outputs


def test_two_processes_adding_versions_of_one_tool(store: ToolStore, sea_home: Settings) -> None:
    bodies_a = [f"return a + b + {i}" for i in range(15)]
    bodies_b = [f"return a * b + {i}" for i in range(15)]
    outputs = _start_writers(sea_home, [("add_numbers", bodies_a), ("add_numbers", bodies_b)])
    versions = [int(line.split()[0]) for out in outputs for line in out.split("\n") if line]
    assert sorted(versions) == list(range(1, 31))  # no version number handed out twice
    fresh = ToolStore(store.root)
    assert fresh.recover() == []
    assert fresh.version_numbers("add_numbers") == list(range(1, 31))
    codes = {fresh.read("add_numbers", n).code for n in range(1, 31)}
    assert codes == {make_draft("add_numbers", body=b).code for b in bodies_a + bodies_b}


def test_two_processes_registering_the_same_content(store: ToolStore, sea_home: Settings) -> None:
    bodies = [f"return a - b - {i}" for i in range(10)]
    outputs = _start_writers(sea_home, [("add_numbers", bodies), ("add_numbers", bodies)])
    created = [int(line.split()[1]) for out in outputs for line in out.split("\n") if line]
    assert sum(created) == 10  # each content was written exactly once; the other process got it back
    assert ToolStore(store.root).version_numbers("add_numbers") == list(range(1, 11))


def test_two_processes_registering_different_tools(store: ToolStore, sea_home: Settings) -> None:
    _start_writers(
        sea_home,
        [("first_tool", [f"return a + {i}" for i in range(8)]), ("second_tool", [f"return b + {i}" for i in range(8)])],
    )
    fresh = ToolStore(store.root)
    assert fresh.names() == ["first_tool", "second_tool"]
    for name in fresh.names():
        assert fresh.version_numbers(name) == list(range(1, 9))
        assert fresh.read(name).version == 8
        for n in range(1, 9):
            fresh.read(name, n)  # every version whole and matching its hashes
