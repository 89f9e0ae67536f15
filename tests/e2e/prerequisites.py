"""What the e2e lane needs installed, and a failure (never a skip) that names the package when it is missing.

`make test` runs this lane; a machine without these packages would otherwise pass while proving less. CONTRIBUTING.md's
Prerequisites name the same packages, and `.ci/run` installs them.
"""

from __future__ import annotations

import pytest

# Debian package -> what it provides the lane.
PACKAGES = {
    "postgresql": "PostgreSQL server binaries (/usr/lib/postgresql/*/bin): the in-cluster database",
    "mariadb-server": "MariaDB server binaries (mariadbd, mariadb-install-db): database.mode external on MySQL",
    "bubblewrap": "bwrap: each container held to its declared security context",
}
INSTALL = "apt-get install -y " + " ".join(PACKAGES)


def require(package: str, found: bool) -> None:
    """Fail the test (not skip) when ``package`` is not installed, naming it and the one command that installs them all."""
    if not found:
        pytest.fail(
            f"the e2e lane needs Debian's `{package}` ({PACKAGES[package]}): install it with `{INSTALL}` "
            "(CONTRIBUTING.md, Prerequisites; .ci/run does)",
            pytrace=False,
        )
