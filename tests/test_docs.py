"""The docs hold together: every relative link and #anchor resolves, each file starts at a title, each doc is indexed.

Anchors follow GitHub's rules for headings (github-slugger): the heading's text, lowercased, with punctuation dropped
(letters, digits, `_`, `-` and spaces kept), spaces turned into `-`, and `-1`, `-2`... appended to repeats.
"""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted(
    [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md")],
    key=str,
)
CONTRIBUTOR_DOCS = ROOT / "docs" / "contributing"

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+).*?\1")
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?\s*\)")


def _prose(text: str) -> list[tuple[int, str]]:
    """Numbered lines outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in _prose(path.read_text()):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    found.update(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", path.read_text()))
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every link and image outside code, absolute URLs left out."""
    found = []
    for number, line in _prose(path.read_text()):
        line = INLINE_CODE.sub("", line)
        for target in [*LINK.findall(line), *IMAGE.findall(line)]:
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                found.append((number, target))
    return found


def broken(path: Path) -> list[str]:
    """Each link of ``path`` whose file or #anchor does not exist, as ``file:line: target (why)``."""
    problems = []
    for number, target in links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}:{number}: {target}"
        if not dest.exists():
            problems.append(f"{where} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{where} (no heading with anchor #{anchor} in {dest.relative_to(ROOT)})")
        elif anchor and dest.suffix != ".md":
            problems.append(f"{where} (an anchor into a file that is not Markdown)")
    return problems


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(path):
    assert broken(path) == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_doc_starts_at_its_title(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# "), f"{path.relative_to(ROOT)} starts with {first!r}, not a '# ' title"


def test_the_readme_indexes_every_user_doc_and_contributing_every_contributor_doc():
    def linked(index: Path) -> set[Path]:
        return {(index.parent / t.partition("#")[0]).resolve() for _, t in links(index) if t.partition("#")[0]}

    user = {p.resolve() for p in (ROOT / "docs").glob("*.md")}
    contributor = {p.resolve() for p in CONTRIBUTOR_DOCS.rglob("*.md")}
    assert sorted(map(str, user - linked(ROOT / "README.md"))) == []
    assert sorted(map(str, contributor - linked(ROOT / "CONTRIBUTING.md"))) == []


def test_the_anchor_rules_are_githubs():
    assert slug("Operations: upgrade, backup, restore, gc") == "operations-upgrade-backup-restore-gc"
    assert slug("`make local-up`'s env file") == "make-local-ups-env-file"
    assert slug("Teams see only their own: workspaces authorized by Kubernetes RBAC") == (
        "teams-see-only-their-own-workspaces-authorized-by-kubernetes-rbac"
    )
    assert slug("External database (PostgreSQL or MySQL)") == "external-database-postgresql-or-mysql"
    assert slug("The toolchain (`make toolchain`, `toolchain/build.sh`)") == "the-toolchain-make-toolchain-toolchainbuildsh"


def test_a_broken_link_or_anchor_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "a.md").write_text("# A\n\n## Its part\n\n[ok](#its-part) [b](b.md#b) `[code](nowhere.md)`\n")
    (tmp_path / "b.md").write_text("# B\n\n[gone](c.md) [wrong](a.md#its-parts) [web](https://example.com/x)\n")
    assert broken(tmp_path / "a.md") == []
    assert broken(tmp_path / "b.md") == [
        "b.md:3: c.md (no such file)",
        "b.md:3: a.md#its-parts (no heading with anchor #its-parts in a.md)",
    ]
