"""The deployed dev stack's state holds no credential in plain text, and every output that carries one is a secret."""

from __future__ import annotations

from tests.cluster.state import assert_no_plaintext_credential


def test_the_stack_export_of_the_deployed_dev_stack_holds_no_plaintext_credential(deployment, tmp_path):
    run = deployment.ensure_up()
    counts = assert_no_plaintext_credential(deployment.engine, tmp_path, run)
    # Eight generated passwords on dev (database, MinIO root, four MinIO users, the browser server's OAuth client and
    # cookie secrets), each in at least one Secret.
    assert counts["passwords"] == 8 and counts["credentials"] >= 8, counts
