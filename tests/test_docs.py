"""The documentation: the README is a door (short, its links resolve) and the repository stands on
its own — no file of the project names a path outside it (only .ci/run, which finds Citus's source
on the CI machine, and the migrations, which are immutable once applied)."""

import re
import subprocess

from helpers import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for heading in re.findall(r"(?m)^#{1,6} (.+)$", text):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", "")).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_the_readme_is_a_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for page in ("docs/contract.md", "docs/design.md", "docs/operations.md", "docs/bi.md", "docs/benchmark.md"):
        assert f"]({page})" in text, page


def test_every_link_of_the_docs_resolves():
    broken = []
    for doc in DOCS:
        text = doc.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists():
                broken.append(f"{doc.name}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text()):
                broken.append(f"{doc.name}: {target} (no such heading)")
    assert not broken, broken


def test_no_file_of_the_project_names_a_path_outside_it():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    outside = re.compile(r"\.\./shared|/work/|CONTRACT\.md|DESIGN\.md|FACTS\.md|STYLE\.md")
    found = []
    for name in files:
        if name in (".ci/run", "tests/test_docs.py"):
            continue
        path = ROOT / name
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{name}: {m.group(0)}" for m in outside.finditer(text)]
    assert not found, found
