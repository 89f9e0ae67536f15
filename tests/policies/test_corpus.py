"""The corpus of stack exports (tests/fixtures/policies/corpus.py): every leak found where it hides, no clean export flagged.

Each export is audited in both forms `pulumi stack export` writes (secrets as
ciphertext, and with ``--show-secrets``) through the `make audit` entry point, and
run through CrossGuard's validate functions as a preview would; no output may hold
any of its credentials.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mlops_policies.audit import main
from tests.fixtures.policies import corpus
from tests.policies.helpers import CREDENTIALS, crossguard_on_export

FORMS = {"ciphertext": False, "show-secrets": True}


def audit_lines(capsys: pytest.CaptureFixture[str], tmp_path: Path, export: corpus.Export, show: bool) -> tuple[int, list[str]]:
    state = tmp_path / "state.json"
    state.write_text(json.dumps(export.render(show)))
    code = main([str(state)])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert not [s for s in (*export.secrets, corpus.SEALED_PASSWORD) if s in output]
    return code, captured.out.splitlines()


def credential_findings(lines: list[str]) -> set[tuple[str, str, str]]:
    """(resource name, path, kind) of every no-plaintext-credentials line: `<policy> <urn> <path>: <kind> [<rule>]`."""
    found = set()
    for line in lines:
        policy, urn, rest = line.split(" ", 2)
        if policy == CREDENTIALS:
            path, kind = rest.split(": ", 1)
            found.add((urn.rsplit("::", 1)[1], path, kind.rsplit(" [", 1)[0]))
    return found


@pytest.mark.parametrize("show", FORMS.values(), ids=list(FORMS))
@pytest.mark.parametrize("export", corpus.LEAKS, ids=[e.id for e in corpus.LEAKS])
def test_the_audit_finds_each_leak_where_it_hides(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, export: corpus.Export, show: bool
) -> None:
    code, lines = audit_lines(capsys, tmp_path, export, show)
    assert credential_findings(lines) == export.expected
    assert code == 1


@pytest.mark.parametrize("export", corpus.LEAKS, ids=[e.id for e in corpus.LEAKS])
def test_crossguard_finds_each_leak_it_can_see(export: corpus.Export) -> None:
    found = crossguard_on_export(export.render(True), (*export.secrets, corpus.SEALED_PASSWORD))
    assert {f[1:] for f in found if f[0] == CREDENTIALS} == export.expected_crossguard()


@pytest.mark.parametrize("show", FORMS.values(), ids=list(FORMS))
@pytest.mark.parametrize("export", corpus.CLEAN, ids=[e.id for e in corpus.CLEAN])
def test_a_clean_export_passes_every_policy(capsys: pytest.CaptureFixture[str], tmp_path: Path, export: corpus.Export, show: bool) -> None:
    assert audit_lines(capsys, tmp_path, export, show) == (0, [])
    assert crossguard_on_export(export.render(True), (corpus.SEALED_PASSWORD,)) == set()


def test_the_corpus_is_organised_by_credential_and_place() -> None:
    assert len(corpus.LEAKS) >= 40 and len(corpus.CLEAN) >= 30
    assert len({e.id for e in corpus.LEAKS + corpus.CLEAN}) == len(corpus.LEAKS) + len(corpus.CLEAN)
    kinds = Counter(kind for e in corpus.LEAKS for _, _, kind in e.expected)
    assert len(kinds) >= 15, kinds
    credentials = Counter(e.credential for e in corpus.LEAKS)
    assert credentials["password"] >= 10 and len(credentials) >= 15, credentials
    assert all(e.secrets for e in corpus.LEAKS)
