"""A machine without the lane's packages fails the run naming what to install; it never passes by skipping."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tools.testing.harness import ROOT


def test_a_missing_package_fails_the_test_that_needs_it_and_names_the_install_command(tmp_path):
    test = tmp_path / "test_needs_mariadb.py"
    test.write_text(
        textwrap.dedent(
            """
            from tests.e2e.prerequisites import require

            def test_mysql():
                require("mariadb-server", False)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(test)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout
    assert "1 failed" in done.stdout and "skipped" not in done.stdout
    assert "needs Debian's `mariadb-server`" in done.stdout
    assert "apt-get install -y postgresql mariadb-server bubblewrap" in done.stdout
