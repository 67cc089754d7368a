"""`python -m tools_library` in real processes: readable output, --json, one-line errors and exit codes."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from library_helpers import make_draft, run_cli

from sea.settings import Settings
from tools_library.seeds import seed_drafts
from tools_library.store import ToolStore


@pytest.fixture
def home(sea_home: Settings) -> Settings:
    """A library with the starter tools (their reports claimed) and three versions of add_numbers."""
    store = ToolStore(sea_home.tools_dir)
    for draft in seed_drafts():
        store.add_version(draft.model_copy(update={"verification": {"verdict": "passed", "passed": 3}}))
    store.add_version(make_draft("add_numbers", description="Add two numbers."))
    store.add_version(make_draft("add_numbers", body="return b + a", description="Add two numbers, b first."))
    store.add_version(make_draft("add_numbers", body="return float(a + b)", description="Add as floats."))
    return sea_home


def cli(settings: Settings, *args: str, **env: str):
    return run_cli(*args, env_extra={"SEA_HOME": str(settings.home), **env})


def assert_one_line_error(done, code: int, text: str) -> None:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr
    assert any(text in line for line in lines), done.stderr
    if code == 2:
        assert len(lines) == 1, done.stderr
        assert not done.stderr.startswith("usage:"), done.stderr


def test_list_and_show(home: Settings) -> None:
    listed = cli(home, "list")
    assert listed.returncode == 0
    assert "calculate_percentage" in listed.stdout and "add_numbers  " in listed.stdout and "v3" in listed.stdout
    as_json = json.loads(cli(home, "list", "--json").stdout)
    assert {t["name"] for t in as_json} == {d.name for d in seed_drafts()} | {"add_numbers"}

    shown = cli(home, "show", "add_numbers")
    assert shown.returncode == 0
    assert "add_numbers  v3 of 3  active" in shown.stdout and "return float(a + b)" in shown.stdout
    assert "--- test_tool.py ---" in shown.stdout
    old = json.loads(cli(home, "show", "add_numbers", "--version", "1", "--json").stdout)
    assert old["version"] == 1 and old["current"] is False and "return a + b" in old["code"]
    assert Path(old["folder"]).is_dir() and (Path(old["folder"]) / "tool.py").is_file()


def test_empty_library(sea_home: Settings) -> None:
    done = cli(sea_home, "list")
    assert done.returncode == 0 and "empty" in done.stdout
    assert json.loads(cli(sea_home, "list", "--json").stdout) == []


@pytest.mark.parametrize(
    ("name", "text"),
    [("../x", "is not allowed"), ("a/b", "is not allowed"), ("os", "shadows a standard-library module"),
     ("__init__", "is not allowed"), ("Tool", "is not allowed"), ("naïve", "is not allowed"),
     ("a" * 1000, "is not allowed"), ("class", "is a Python keyword")],
)
def test_bad_names_exit_2_with_one_line(home: Settings, name: str, text: str) -> None:
    assert_one_line_error(cli(home, "show", name), 2, text)
    assert_one_line_error(cli(home, "rollback", name, "1"), 2, text)


def test_unknown_tool_and_version_exit_2(home: Settings) -> None:
    assert_one_line_error(cli(home, "show", "no_such_tool"), 2, "There is no tool named 'no_such_tool'")
    assert_one_line_error(cli(home, "show", "add_numbers", "--version", "7"), 2, "has no version 7")
    assert_one_line_error(cli(home, "rollback", "add_numbers", "9"), 2, "has no version 9")
    assert_one_line_error(cli(home, "rollback", "add_numbers", "zero"), 2, "is not a version number")
    assert_one_line_error(cli(home, "diff", "add_numbers", "1", "0"), 2, "is not a version number")
    assert_one_line_error(cli(home, "retire", "no_such_tool"), 2, "no tool named")
    assert_one_line_error(cli(home, "frobnicate"), 2, "invalid choice")


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["rollback", "X", "0"], "'0' is not a version number (versions start at 1)"),
        (["rollback", "add_numbers", "0"], "'0' is not a version number (versions start at 1)"),
        (["rollback", "add_numbers", "-1"], "is not a version number"),
        (["rollback", "add_numbers"], "the following arguments are required: version"),
        (["show", "add_numbers", "--version", "0"], "is not a version number"),
        (["search", "x", "-k", "0"], "'0' is not a number of hits"),
        (["list", "--bogus"], "unrecognized arguments: --bogus"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_usage_errors_are_one_sentence_and_exit_2(home: Settings, args: list[str], text: str) -> None:
    done = cli(home, *args)
    assert_one_line_error(done, 2, text)
    assert done.stderr.startswith("error: ") and not done.stdout


def test_a_damaged_manifest_is_skipped_by_list_and_search(home: Settings) -> None:
    store = ToolStore(home.tools_dir)
    (store.version_path("word_count", 1) / "manifest.json").write_text("[1, 2, 3]\n")
    manifest_file = store.version_path("add_numbers", 3) / "manifest.json"
    meta = json.loads(manifest_file.read_text())
    manifest_file.write_text(json.dumps({**meta, "provenance": "trust me"}))
    listed = cli(home, "list")
    assert listed.returncode == 0, listed.stderr
    assert "calculate_percentage" in listed.stdout and "word_count" not in listed.stdout
    assert "add_numbers" not in listed.stdout
    assert "Skipping tool word_count" in listed.stderr and "Traceback" not in listed.stderr
    found = cli(home, "search", "What is 15 percent of 300?", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["hits"][0]["name"] == "calculate_percentage"
    shown = cli(home, "show", "word_count")
    assert_one_line_error(shown, 1, "The manifest of version 1 of tool 'word_count' is not a JSON object")


def test_versions_rollback_retire_diff(home: Settings) -> None:
    versions = json.loads(cli(home, "versions", "add_numbers", "--json").stdout)
    assert [(v["version"], v["current"]) for v in versions] == [(1, False), (2, False), (3, True)]
    human = cli(home, "versions", "add_numbers").stdout.splitlines()
    assert human[-1].startswith("* v3") and human[0].startswith("  v1")

    rolled = cli(home, "rollback", "add_numbers", "1")
    assert rolled.returncode == 0 and "now at version 1" in rolled.stdout
    assert json.loads(cli(home, "show", "add_numbers", "--json").stdout)["version"] == 1

    retired = cli(home, "retire", "add_numbers")
    assert retired.returncode == 0 and "retired" in retired.stdout
    assert "add_numbers" not in cli(home, "list").stdout
    assert "[retired]" in cli(home, "list", "--all").stdout
    assert "RETIRED" in cli(home, "show", "add_numbers").stdout

    diff = cli(home, "diff", "add_numbers", "1", "2")
    assert diff.returncode == 0
    assert "-    return a + b" in diff.stdout and "+    return b + a" in diff.stdout
    assert "+Add two numbers, b first." in diff.stdout
    assert "identical" in cli(home, "diff", "add_numbers", "2", "2").stdout


def test_search_and_reindex(home: Settings) -> None:
    found = json.loads(cli(home, "search", "What is 15 percent of 300?", "--json").stdout)
    assert found["hits"][0]["name"] == "calculate_percentage"
    assert set(found["decision"]) >= {"choice", "confidence", "above_floor"}
    two = cli(home, "search", "convert celsius to fahrenheit", "-k", "2")
    assert two.returncode == 0 and two.stdout.startswith("1. celsius_to_fahrenheit")
    assert "3. " not in two.stdout and "reuse:" in two.stdout
    rebuilt = cli(home, "reindex", "--json")
    assert json.loads(rebuilt.stdout) == {"indexed": len(seed_drafts()) + 1}


def test_export_and_tampered_import(home: Settings, tmp_path: Path) -> None:
    pack = tmp_path / "two.seapack"
    exported = cli(home, "export", str(pack), "word_count", "add_numbers", "--json")
    assert exported.returncode == 0
    assert json.loads(exported.stdout)["tools"] == [{"name": "word_count", "version": 1},
                                                   {"name": "add_numbers", "version": 3}]
    tampered = tmp_path / "tampered.seapack"
    with zipfile.ZipFile(pack) as old, zipfile.ZipFile(tampered, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename == "tools/word_count/tool.py":
                data = data.replace(b"len(text.split())", b"42")
            new.writestr(info.filename, data)
    assert_one_line_error(cli(home, "import", str(tampered)), 2, "has been altered or damaged")
    assert_one_line_error(cli(home, "import", str(tmp_path / "nope.seapack")), 2, "no pack file")
    assert_one_line_error(cli(home, "export", str(tmp_path / "x.seapack"), "no_such_tool"), 2, "no tool named")


def test_sandbox_unavailable_exits_1_with_a_clear_message(home: Settings) -> None:
    missing = {"SEA_SANDBOX_IMAGE": "sea-sandbox-missing:never-built"}
    done = cli(home, "show", "word_count", "--verify", **missing)
    assert_one_line_error(done, 1, "sea-sandbox-missing:never-built")
    assert not done.stdout


@pytest.mark.docker
@pytest.mark.slow
def test_show_verify_runs_the_stored_tests_in_the_sandbox(home: Settings) -> None:
    done = cli(home, "show", "word_count", "--verify", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)["verify"]
    assert report["verdict"] == "passed" and report["passed"] == 3 and report["image_id"]
