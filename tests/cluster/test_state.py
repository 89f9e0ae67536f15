"""The deployed dev stack's state holds no credential in plain text, and every output that carries one is a secret."""

from __future__ import annotations

from tests.cluster.state import assert_no_plaintext_credential


def test_the_stack_export_of_the_deployed_dev_stack_holds_no_plaintext_credential(deployment, tmp_path):
    run = deployment.ensure_up()
    counts = assert_no_plaintext_credential(deployment.engine, tmp_path, run)
    # Six generated passwords on dev (database, MinIO root and four MinIO users), each in at least one Secret.
    assert counts["passwords"] == 6 and counts["credentials"] >= 6, counts
