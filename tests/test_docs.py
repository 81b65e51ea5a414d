"""The README and docs/ hold together: every test they cite exists, every relative link and anchor resolves, every
decision record a code comment points to exists, and the README stays short enough to read in ten minutes."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_LINES = 450
CODE_FOLDERS = ("bot", "runner", "updater", "shared", "launcher", "bench")

CITED_TEST = re.compile(r"((?:[\w.-]+/)*test_\w+\.py)::\s*(\w+)(?:::(\w+))?")
"""`test_x.py::test_y`, `tests/test_x.py::test_y` or `test_x.py::TestClass::test_y` (a parametrized id's `[case]`
is left out by `\\w+`, so it counts by its function's name)."""

CITED_TEST_FILE = re.compile(r"`((?:tests/)?test_\w+\.py)`")
CITED_PATH = re.compile(r"`((?:bot|runner|updater|shared|launcher|bench|tests|deploy|docs)/[\w/.-]*)`")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
DECISION_POINTER = re.compile(r"docs/decisions/[\w.-]+\.md")
FENCE = re.compile(r"^(```|~~~)")


def documents() -> list[Path]:
    return [README, *sorted((ROOT / "docs").rglob("*.md"))]


def cited_test_path(cited: str) -> Path:
    """A cited test file: `tests/...` and other paths from the repository root, a bare name from tests/."""
    return ROOT / cited if "/" in cited else ROOT / "tests" / cited


@cache
def defined_names(path: Path) -> frozenset[str]:
    """Every function and class a test file defines, at any depth (test methods sit inside classes)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return frozenset(node.name for node in ast.walk(tree) if isinstance(node, kinds))


def prose(text: str) -> str:
    """The text outside fenced code blocks (a link or anchor inside one is just text)."""
    kept, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            kept.append(line)
    return "\n".join(kept)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation other than `-` and `_` dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    found: set[str] = set()
    for line in prose(path.read_text()).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match[1])
            name, count = base, 1
            while name in found:
                name, count = f"{base}-{count}", count + 1
            found.add(name)
    return frozenset(found)


def test_every_test_the_docs_cite_exists() -> None:
    missing = []
    for doc in documents():
        for match in CITED_TEST.finditer(doc.read_text()):
            cited_file, name, method = match[1], match[2], match[3]
            path = cited_test_path(cited_file)
            where = f"{doc.relative_to(ROOT)}: {match[0]}"
            if not path.is_file():
                missing.append(f"{where} (no file {path.relative_to(ROOT)})")
            elif name not in defined_names(path) or (method and method not in defined_names(path)):
                missing.append(where)
    assert not missing, "cited tests that do not exist:\n" + "\n".join(missing)


def test_every_test_file_the_docs_cite_exists() -> None:
    missing = [
        f"{doc.relative_to(ROOT)}: {cited}"
        for doc in documents()
        for cited in CITED_TEST_FILE.findall(doc.read_text())
        if not cited_test_path(cited).is_file()
    ]
    assert not missing, "cited test files that do not exist:\n" + "\n".join(missing)


def test_every_repository_path_the_docs_name_exists() -> None:
    """`runner/weights/packing.py`, `bench/pipeline.py`, `shared/storage/lua/` ...: a moved or renamed file fails."""
    missing = [
        f"{doc.relative_to(ROOT)}: {cited}"
        for doc in documents()
        for cited in CITED_PATH.findall(doc.read_text())
        if not (ROOT / cited).exists()
    ]
    assert not missing, "paths the docs name that do not exist:\n" + "\n".join(missing)


def test_the_docs_cite_tests_at_all() -> None:
    """The pattern above still matches the way the guarantees cite tests (else the first test proves nothing)."""
    guarantees = (ROOT / "docs" / "guarantees.md").read_text()
    assert len(CITED_TEST.findall(guarantees)) > 100


def test_every_relative_link_and_anchor_resolves() -> None:
    broken = []
    for doc in documents():
        for target in LINK.findall(prose(doc.read_text())):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            path = (doc.parent / path_part).resolve() if path_part else doc
            if not path.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and (path.suffix != ".md" or anchor not in anchors(path)):
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_every_decision_record_a_code_comment_points_to_exists() -> None:
    missing = [
        f"{source.relative_to(ROOT)}: {pointer}"
        for folder in CODE_FOLDERS
        for source in sorted((ROOT / folder).rglob("*.py"))
        for pointer in DECISION_POINTER.findall(source.read_text())
        if not (ROOT / pointer).is_file()
    ]
    assert not missing, "code points to decision records that do not exist:\n" + "\n".join(missing)


def test_the_readme_reads_in_ten_minutes() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move details to docs/ (at most {README_MAX_LINES})"
