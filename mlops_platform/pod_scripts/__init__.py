"""Scripts that run inside pods, in the MLflow or PostgreSQL image, which do not have this package.

Each module's source travels as text (a ``python -c`` command or a ConfigMap), so each imports nothing of this
package and reads its settings from the environment: ``logins`` (the database logins' rotation), ``dumps``
(backups to the artifact store, also imported by ``tools.operator.restore``), ``wait`` (until the database
answers), ``gc`` (``mlflow gc`` for a proxied store) and ``admin_password`` (basic-auth's admin user).
"""

from __future__ import annotations

from pathlib import Path


def source(name: str) -> str:
    """The text of the script ``name``, as it runs in the pod."""
    return Path(__file__).with_name(f"{name}.py").read_text()
