"""Sets basic-auth's admin user to the generated password (rotation.trackingAdmin), where MLflow keeps it: its auth tables.

MLflow's server creates the admin user with MLFLOW_AUTH_ADMIN_PASSWORD only when the user does not exist
(mlflow/server/auth/__init__.py, create_admin_user), so a new password in the Secret alone changes nothing.
This runs as a Job, ``python -c <source>``, in the MLflow image after the migration; it imports nothing of this
package and reads its settings from the environment only.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    user, password = os.environ["MLFLOW_AUTH_ADMIN_USERNAME"], os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"]
    store = SqlAlchemyStore()
    store.init_db(os.environ["MLFLOW_BACKEND_STORE_URI"])
    if store.has_user(user, use_primary=True):
        store.update_user(user, password)
    else:
        store.create_user(user, password, is_admin=True)
    if not store.authenticate_user(user, password, use_primary=True):
        print(f"admin-password: {user} does not authenticate with the new password", file=sys.stderr)
        return 1
    print(f"admin-password: {user} now authenticates with the generated password only", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
