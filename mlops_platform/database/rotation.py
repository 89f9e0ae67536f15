"""Rotation of the in-cluster PostgreSQL login (``rotation.database``): two roles taking turns, so no client is cut.

Generation 0 is the stack as before rotation: the server logs in as the owner with its initdb password (Secret
``<name>-db``). From generation 1 the server and its jobs read Secret ``<name>-db-login`` instead, which names the
login of the current generation: the owner (even) or ``<user>_b`` (odd), each with its own RandomPassword. One
``pulumi up`` of a new generation runs, in the engine's order (see pod_scripts/logins.py for what each Job does):

1. the new generation's RandomPassword, and Secret ``<name>-db-next`` (the new login, and the other one's);
2. Job ``<name>-db-rotate-<g>``: gives the new login its password; the login in use keeps working;
3. Secret ``<name>-db-login`` (waits for 2), then the migration and the Deployment, whose pods roll because
   their template carries the generation; pods of the old ReplicaSet keep the old login until they stop;
4. Job ``<name>-db-retire-<g>`` (waits for the rollout): the old login's password is removed.

``<name>-db`` and the StatefulSet never change: the postgres image reads its credentials at initdb only, so a
fresh install at any generation starts with the owner's initdb password, which step 2 logs in with.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from mlops_platform import pod_scripts, rotation
from mlops_platform.database import postgres
from mlops_platform.k8s import jobs, naming
from mlops_platform.k8s.containers import TMP, container, plain_env, secret_env
from mlops_platform.settings_base import Resources

COMPONENT = "postgresql-logins"
# The second login role: a member of the owner acting as the owner.
SECOND_LOGIN_SUFFIX = "_b"
SOURCE = pod_scripts.source("logins")
_JOB_RESOURCES = Resources(cpu_request="50m", cpu_limit="500m", memory_request="128Mi", memory_limit="512Mi")


def login_user(user: str, generation: int) -> str:
    return user if generation % 2 == 0 else f"{user}{SECOND_LOGIN_SUFFIX}"


def _last(generation: int, parity: int) -> int:
    """The latest generation up to ``generation`` that used the slot of this parity (0 for the owner's first)."""
    return generation if generation % 2 == parity else max(generation - 1, 0)


@dataclass(frozen=True)
class Login:
    """What the server and its jobs log in with from generation 1 on."""

    secret: pulumi.Output[str]
    user: str
    password: pulumi.Output[str]
    uri: pulumi.Output[str]
    # The rotation Job: nothing logs in with the new login before it completed.
    rotated: k8s.batch.v1.Job


class LoginRotation:
    """The Secrets and Jobs of one generation; ``retire_after`` declares the retirement once the Deployment exists."""

    def __init__(
        self,
        name: str,
        *,
        namespace: str,
        user: str,
        database: str,
        host: pulumi.Input[str],
        generation: int,
        owner_secret: str,
        owner_password: pulumi.Output[str],
        image: str,
        opts: pulumi.ResourceOptions,
    ):
        if generation < 1:
            raise ValueError("generation 0 is the owner's initdb login: nothing to rotate")
        self._name, self._namespace, self._image, self._generation = name, namespace, image, generation
        self._opts = opts
        # Where to log in, without a login: each step passes its user and password apart.
        self._url = pulumi.Output.concat("postgresql://", host, f":{postgres.PORT}/", database)
        passwords: dict[int, pulumi.Output[str]] = {}
        for parity in (0, 1):
            last = _last(generation, parity)
            if parity == 0 and last == 0:
                # The owner has logged in with its initdb password only: it is retired at generation 1.
                passwords[parity] = owner_password
                continue
            passwords[parity] = random.RandomPassword(
                f"{name}-db-password-{'ab'[parity]}", length=32, special=False, keepers=rotation.keepers(last), opts=opts
            ).result
        self.user, self.other_user = login_user(user, generation), login_user(user, generation + 1)
        password, other_password = passwords[generation % 2], passwords[(generation + 1) % 2]

        def meta(suffix: str) -> k8s.meta.v1.ObjectMetaArgs:
            return naming.metadata(f"{name}-db-{suffix}", namespace, component=COMPONENT, instance=name)

        self._next = k8s.core.v1.Secret(
            f"{name}-db-next",
            metadata=meta("next"),
            type="Opaque",
            string_data={
                "username": self.user,
                "password": password,
                "generation": str(generation),
                "other-username": self.other_user,
                "other-password": other_password,
            },
            opts=opts,
        )
        self._owner_secret = owner_secret
        self._login_name = f"{name}-db-login"
        rotated = self._job(
            "rotate",
            [
                *self._next_env("LOGIN", "username", "password"),
                secret_env("LOGIN_GENERATION", self._next.metadata.name, "generation"),
                # The login in use, as its Secret holds it when the pod starts; absent before the first rotation.
                *(_optional_secret_env(f"LIVE_{v}", self._login_name, k) for v, k in _LOGIN_KEYS),
                secret_env("OWNER_USER", owner_secret, "username"),
                secret_env("OWNER_PASSWORD", owner_secret, "password"),
            ],
            pulumi.ResourceOptions(),
        )
        uri = pulumi.Output.concat("postgresql+psycopg2://", self.user, ":", password, "@", host, f":{postgres.PORT}/", database)
        secret = k8s.core.v1.Secret(
            f"{name}-db-login",
            metadata=meta("login"),
            type="Opaque",
            string_data={"username": self.user, "password": password, "database": database, "uri": uri, "generation": str(generation)},
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[rotated])),
        )
        self.login = Login(secret.metadata.name, self.user, password, uri, rotated)

    def _next_env(self, prefix: str, user_key: str, password_key: str) -> list[k8s.core.v1.EnvVarArgs]:
        return [
            secret_env(f"{prefix}_USER", self._next.metadata.name, user_key),
            secret_env(f"{prefix}_PASSWORD", self._next.metadata.name, password_key),
        ]

    def retire_after(self, rollout: list[pulumi.Resource]) -> k8s.batch.v1.Job:
        """The old login loses its password once ``rollout`` (the server's Deployment) has converged."""
        return self._job(
            "retire",
            [
                secret_env("LOGIN_USER", self.login.secret, "username"),
                secret_env("LOGIN_PASSWORD", self.login.secret, "password"),
                *self._next_env("OTHER", "other-username", "other-password"),
            ],
            pulumi.ResourceOptions(depends_on=rollout),
        )

    def _job(self, step: str, env: list[k8s.core.v1.EnvVarArgs], extra: pulumi.ResourceOptions) -> k8s.batch.v1.Job:
        name = self._name
        job_container = container(
            step,
            self._image,
            _JOB_RESOURCES,
            command=["python", "-c", SOURCE, step],
            env=[*plain_env({"DATABASE_URL": self._url, "HOME": "/tmp"}), *env],
            scratch=[TMP],
        )
        return jobs.generation_job(
            f"{name}-db-{step}",
            object_name=f"{name}-db-{step}-{self._generation}",
            namespace=self._namespace,
            component=COMPONENT,
            instance=name,
            job_container=job_container,
            labels={postgres.CLIENT_LABEL: "true"},
            backoff_limit=2,
            opts=pulumi.ResourceOptions.merge(self._opts, extra),
        )


_LOGIN_KEYS = (("USER", "username"), ("PASSWORD", "password"), ("GENERATION", "generation"))


def _optional_secret_env(name: str, secret: str, key: str) -> k8s.core.v1.EnvVarArgs:
    """An env var from a Secret that may not exist yet (the pod starts without it)."""
    return k8s.core.v1.EnvVarArgs(
        name=name,
        value_from=k8s.core.v1.EnvVarSourceArgs(secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret, key=key, optional=True)),
    )
