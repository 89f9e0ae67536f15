"""Run the real Pulumi program in-process under Pulumi's mock engine and record what it declares.

This is the one harness behind ``make plan``, the unit tests and the end-to-end
test. It reads a stack's config the way the Pulumi CLI would, runs
``__main__.py`` unchanged, and records every RegisterResource request: type,
name, parent, protect, retainOnDelete, dependencies and inputs, with the paths
of values that travelled as Pulumi secrets.
"""

from __future__ import annotations

import hashlib
import json
import logging
import runpy
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlops_platform.settings_base import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "mlops-platform"
MASK = "[secret]"
SECURE_PLACEHOLDER = "[secure config placeholder]"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
FAKE_ACCOUNT = "123456789012"


@dataclass
class DeclaredResource:
    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    protect: bool
    retain_on_delete: bool
    dependencies: list[str]
    inputs: dict[str, Any]
    secret_paths: list[str]
    outputs: dict[str, Any] = field(default_factory=dict)
    # The replacement_trigger option, unwrapped; whether it travelled as a secret.
    replacement_trigger: Any = None
    replacement_trigger_secret: bool = False
    # URNs the resource had before (the aliases option): the engine moves their state to ``urn`` instead of replacing.
    alias_urns: list[str] = field(default_factory=list)
    # The deleteBeforeReplace option: a replacement deletes this object before creating the new one.
    delete_before_replace: bool = False

    @property
    def is_kubernetes(self) -> bool:
        return self.type.startswith("kubernetes:") and "kind" in self.inputs

    @property
    def kind(self) -> str | None:
        return self.inputs.get("kind")

    @property
    def k8s_name(self) -> str | None:
        return (self.inputs.get("metadata") or {}).get("name")

    @property
    def k8s_namespace(self) -> str | None:
        return (self.inputs.get("metadata") or {}).get("namespace")

    def pod_spec(self) -> dict[str, Any] | None:
        """The pod template's spec of a workload (Deployment, StatefulSet, Job, CronJob, ...), else None."""
        spec = self.inputs.get("spec") or {}
        if "jobTemplate" in spec:
            spec = spec["jobTemplate"].get("spec") or {}
        template = spec.get("template")
        return template.get("spec") if isinstance(template, dict) else None

    def masked_inputs(self) -> dict[str, Any]:
        return _mask(self.inputs, "", set(self.secret_paths))

    def record(self) -> dict[str, Any]:
        """The resources.json shape, shared with the policy pack's audit."""
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "custom": self.custom,
            "protect": self.protect,
            "retainOnDelete": self.retain_on_delete,
            "dependencies": self.dependencies,
            "inputs": self.masked_inputs(),
            "secretPaths": self.secret_paths,
        }


@dataclass
class Plan:
    stack: str
    resources: list[DeclaredResource]
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)
    # What the program logged (pulumi.log), as (severity, message): what `pulumi preview` prints above the resources.
    logs: list[tuple[str, str]] = field(default_factory=list)

    def masked_outputs(self) -> dict[str, Any]:
        """Stack outputs as `pulumi stack output` shows them: secret ones masked."""
        return {k: (MASK if k in self.secret_outputs else v) for k, v in self.outputs.items()}

    def of_type(self, type_: str) -> list[DeclaredResource]:
        return [r for r in self.resources if r.type == type_]

    def kinds(self, kind: str) -> list[DeclaredResource]:
        return [r for r in self.resources if r.is_kubernetes and r.kind == kind]

    def k8s(self, kind: str, name: str, namespace: str | None = None) -> DeclaredResource:
        found = [r for r in self.kinds(kind) if r.k8s_name == name and (namespace is None or r.k8s_namespace == namespace)]
        if len(found) != 1:
            raise LookupError(f"expected one {kind} {namespace or '*'}/{name}, found {len(found)}")
        return found[0]

    def by_urn(self, urn: str) -> DeclaredResource:
        return next(r for r in self.resources if r.urn == urn)

    def manifests(self) -> Iterator[tuple[DeclaredResource, dict[str, Any]]]:
        """Every Kubernetes object as it would be applied, secrets masked."""
        for r in self.resources:
            if r.is_kubernetes:
                yield r, r.masked_inputs()


# -- reading and writing values ------------------------------------------------


def _unwrap(value: Any, path: str, secrets: list[str]) -> Any:
    """Strip Pulumi's secret wrappers, remembering where they were."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            secrets.append(path)
            return _unwrap(value.get("value"), path, [])
        return {k: _unwrap(v, _join(path, k), secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _mask(value: Any, path: str, secret_paths: set[str]) -> Any:
    if path in secret_paths:
        return _mask_leaves(value)
    if isinstance(value, dict):
        return {k: _mask(v, _join(path, k), secret_paths) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, f"{path}[{i}]", secret_paths) for i, v in enumerate(value)]
    return value


def _mask_leaves(value: Any) -> Any:
    """Hide every value but keep the shape, so a masked Secret is still a valid manifest."""
    if isinstance(value, dict):
        return {k: _mask_leaves(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_leaves(v) for v in value]
    return MASK


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# -- the mock engine -------------------------------------------------------------


def _fake_password(seed: str, length: int, special: bool) -> str:
    """Deterministic per resource, so plans are reproducible; still a real-looking secret."""
    alphabet = string.ascii_letters + string.digits + ("!#%&*()-_=+[]{}<>:?" if special else "")
    digest = b""
    counter = 0
    while len(digest) < length:
        digest += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


def _mocks(stack: str):
    import pulumi

    class PlatformMocks(pulumi.runtime.Mocks):
        """Outputs a provider would compute: generated passwords, ARNs, addresses."""

        def new_resource(self, args: pulumi.runtime.MockResourceArgs):
            outputs = dict(args.inputs)
            t = args.typ
            if t == "random:index/randomPassword:RandomPassword":
                # New keepers are a new password, as pulumi-random generates one when they change.
                keepers = args.inputs.get("keepers")
                seed = f"{stack}/{args.name}" + (f"/{json.dumps(keepers, sort_keys=True)}" if keepers else "")
                outputs["result"] = _fake_password(seed, int(args.inputs.get("length", 16)), bool(args.inputs.get("special", True)))
            elif t == "aws:s3/bucket:Bucket":
                bucket = args.inputs.get("bucket", args.name)
                outputs.update(bucket=bucket, arn=f"arn:aws:s3:::{bucket}")
                return bucket, outputs
            elif t == "aws:iam/role:Role":
                outputs.update(arn=f"arn:aws:iam::{FAKE_ACCOUNT}:role/{args.name}", name=args.name)
            elif t == "aws:iam/policy:Policy":
                outputs.update(arn=f"arn:aws:iam::{FAKE_ACCOUNT}:policy/{args.name}")
            elif t == "aws:rds/instance:Instance":
                address = f"{args.name}.example.eu-west-1.rds.amazonaws.com"
                outputs.update(address=address, endpoint=f"{address}:5432", arn=f"arn:aws:rds:eu-west-1:{FAKE_ACCOUNT}:db:{args.name}")
            return f"{args.name}-id", outputs

        def call(self, args: pulumi.runtime.MockCallArgs):
            if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
                return {"accountId": FAKE_ACCOUNT, "arn": f"arn:aws:iam::{FAKE_ACCOUNT}:user/mock", "userId": "mock"}
            return {}

    return PlatformMocks()


def _monitor(mocks, records: list[DeclaredResource]):
    from google.protobuf import json_format
    from pulumi.runtime import mocks as mocks_module
    from pulumi.runtime import rpc
    from pulumi.runtime.proto import resource_pb2
    from pulumi.runtime.sync_await import _sync_await

    class RecordingMonitor(mocks_module.MockMonitor):
        """Records each request, and marks additionalSecretOutputs as the real engine does."""

        def _alias_urn(self, request: Any, alias: Any) -> str:
            """The URN an alias names: given whole, or the current one with the spec's name, type or parent."""
            if alias.urn:
                return alias.urn
            spec = alias.spec
            parent = "" if spec.noParent else (spec.parentUrn or request.parent)
            return self.make_urn(parent, spec.type or request.type, spec.name or request.name)

        def RegisterResource(self, request: Any) -> Any:
            urn = self.make_urn(request.parent, request.type, request.name)
            if request.type == "pulumi:pulumi:Stack":
                return resource_pb2.RegisterResourceResponse(urn=urn)
            secret_paths: list[str] = []
            raw = json_format.MessageToDict(request.object, preserving_proto_field_name=True)
            inputs = _unwrap(raw, "", secret_paths)
            record = DeclaredResource(
                urn=urn,
                type=request.type,
                name=request.name,
                parent=request.parent or None,
                custom=bool(request.custom),
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                delete_before_replace=bool(request.deleteBeforeReplace),
                dependencies=sorted(set(request.dependencies)),
                inputs=inputs,
                secret_paths=sorted(secret_paths),
            )
            record.alias_urns = [self._alias_urn(request, alias) for alias in request.aliases] + list(request.aliasURNs)
            if request.HasField("replacement_trigger"):
                trigger_secrets: list[str] = []
                record.replacement_trigger = _unwrap(json_format.MessageToDict(request.replacement_trigger), "", trigger_secrets)
                record.replacement_trigger_secret = bool(trigger_secrets)
            records.append(record)
            mocks_module._ensure_event_loop()
            resource_args = mocks_module.MockResourceArgs(
                typ=request.type,
                # An aliased resource keeps the state of the URN it names (its generated password, its physical name).
                name=record.alias_urns[0].rsplit("::", 1)[-1] if record.alias_urns else request.name,
                inputs=rpc.deserialize_properties(request.object),
                provider=request.provider,
                resource_id=request.importId,
                custom=request.custom or False,
            )
            id_, state = self.mocks.new_resource(resource_args)
            if id_ is None:
                raise TypeError(f"the mocks gave {urn} no id")
            record.outputs = dict(state)
            for key in request.additionalSecretOutputs:
                if key in state and not (isinstance(state[key], dict) and _SIG_KEY in state[key]):
                    state[key] = {_SIG_KEY: _SECRET_SIG, "value": state[key]}
            obj_proto = _sync_await(rpc.serialize_properties(state, {}))
            self.resources[urn] = mocks_module.MockMonitor.ResourceRegistration(urn, id_, state)
            return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=obj_proto)

    return RecordingMonitor(mocks)


# -- config ----------------------------------------------------------------------


def stack_config(stack: str, root: Path = ROOT) -> tuple[dict[str, str], list[str]]:
    """Read Pulumi.<stack>.yaml as the CLI hands it to the program: objects as JSON text.

    ``secure:`` values cannot be decrypted here; they become visible placeholders.
    """
    path = root / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise FileNotFoundError(
            f"no stack file {path.name}; stacks here: " + ", ".join(sorted(p.name[7:-5] for p in root.glob("Pulumi.*.yaml")))
        )
    stack_values = _config_section(path)
    project_defaults = _config_section(root / "Pulumi.yaml")
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, spec in project_defaults.items():
        if isinstance(spec, dict) and "default" in spec:
            config[_qualify(key)] = _as_config_text(spec["default"])
    for key, value in stack_values.items():
        key = _qualify(key)
        value, secure = _placeholders(value)
        config[key] = _as_config_text(value)
        if secure:
            # Like the CLI: a secure value anywhere inside makes the whole key secret.
            secret_keys.append(key)
    return config, secret_keys


class _StackFileLoader(yaml.SafeLoader):
    """A scalar its tag cannot construct (``2024-13-45``, ``!!int x``) becomes a marked error, not an exception quoting it."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except Exception:
            raise yaml.constructor.ConstructorError(None, None, f"not a valid {node.tag.rsplit(':', 1)[-1]}", node.start_mark) from None


def _config_section(path: Path) -> dict[str, Any]:
    """The ``config`` mapping of a project or stack file.

    A file that is not YAML, or not a mapping, fails like bad config: ConfigError,
    one line with the file, line and column. PyYAML's problem names a token,
    character, anchor or tag, never a value, so no secret is echoed.
    """
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path.name}: {_position(raw, exc.start)}: not UTF-8 text") from None
    try:
        loader = _StackFileLoader(text)
        root = loader.get_single_node()
        document = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        context = f" ({exc.context} at {_line_column(exc.context_mark)})" if exc.context and exc.context_mark and exc.problem_mark else ""
        problem = " ".join((exc.problem or exc.context or "").split())
        raise ConfigError(f"{path.name}: {_line_column(mark)}: invalid YAML: {problem}{context}") from None
    except yaml.reader.ReaderError as exc:
        raise ConfigError(f"{path.name}: {_position(text, exc.position)}: invalid YAML: {exc.reason} (#x{exc.character:04x})") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path.name}: {_line_column(root.start_mark)}: expected a mapping with a config key, found {_kind(document)}")
    section = document.get("config")
    if section is None:
        return {}
    section_node = [v for k, v in root.value if k.value == "config"][-1]
    if not isinstance(section, dict):
        raise ConfigError(
            f"{path.name}: {_line_column(section_node.start_mark)}: config: expected a mapping of keys to values, found {_kind(section)}"
        )
    for key_node, _ in section_node.value:
        if key_node.tag != "tag:yaml.org,2002:str":
            raise ConfigError(f"{path.name}: {_line_column(key_node.start_mark)}: config: expected a string key")
    return section


def _line_column(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _position(text: str | bytes, offset: int) -> str:
    """Line and column of ``offset``: a byte offset in undecodable bytes, a character offset in text."""
    if isinstance(text, bytes):
        start, line = text.rfind(b"\n", 0, offset) + 1, text.count(b"\n", 0, offset) + 1
    else:
        start, line = text.rfind("\n", 0, offset) + 1, text.count("\n", 0, offset) + 1
    return f"line {line}, column {offset - start + 1}"


_KINDS: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string"}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), f"a {type(value).__name__}")


def _placeholders(value: Any) -> tuple[Any, bool]:
    """Replace every ``secure:`` value (top level or nested with ``--path``) by a visible placeholder."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECURE_PLACEHOLDER, True
        fields = {k: _placeholders(v) for k, v in value.items()}
        return {k: v for k, (v, _) in fields.items()}, any(secure for _, secure in fields.values())
    if isinstance(value, list):
        items = [_placeholders(v) for v in value]
        return [v for v, _ in items], any(secure for _, secure in items)
    return value, False


def with_overrides(config: dict[str, str], overrides: Mapping[str, Any]) -> dict[str, str]:
    """``config`` with whole keys replaced, each value rendered as the CLI hands it to the program."""
    return {**config, **{_qualify(k): _as_config_text(v) for k, v in overrides.items()}}


def _qualify(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


def _as_config_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


# -- running the program -----------------------------------------------------------


def run_program(
    stack: str,
    config: dict[str, str] | None = None,
    secret_keys: list[str] | None = None,
    program: Path = ROOT / "__main__.py",
    preview: bool = False,
    stack_dir: Path = ROOT,
    declared: list[DeclaredResource] | None = None,
) -> Plan:
    """Run ``program`` for ``stack`` under mocks and return everything it declared.

    Config defaults to the stack file. Raises whatever the program raises (for
    example ConfigError), after the mock runtime has been torn down; resources
    are recorded into ``declared`` as they are registered, so a caller can see
    what a failed run declared.
    """
    import pulumi
    from pulumi.runtime import settings
    from pulumi.runtime.stack import Stack

    records: list[DeclaredResource] = [] if declared is None else declared
    if config is None:
        config, file_secret_keys = stack_config(stack, stack_dir)
        secret_keys = file_secret_keys if secret_keys is None else secret_keys
    settings.ROOT.set(None)
    mocks = _mocks(stack)
    logs: list[tuple[str, str]] = []
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=_monitor(mocks, records), logger=_recorder(logs))
    pulumi.runtime.set_all_config(config, secret_keys or [])
    exported: dict[str, Any] = {}
    secret_outputs: set[str] = set()

    @pulumi.runtime.test
    def _run():
        runpy.run_path(str(program), run_name="__main__")
        root = settings.get_root_resource()
        stack_outputs = root.outputs if isinstance(root, Stack) else {}
        outputs = {k: pulumi.Output.from_input(v) for k, v in stack_outputs.items()}

        def collect(values: dict[str, Any]) -> None:
            exported.update(values)

        async def secrecy() -> None:
            for key, out in outputs.items():
                if await out.is_secret():
                    secret_outputs.add(key)

        import asyncio

        return pulumi.Output.all(**outputs).apply(collect) if outputs else None, asyncio.ensure_future(secrecy())

    _run()
    return Plan(stack=stack, resources=records, outputs=exported, secret_outputs=secret_outputs, logs=logs)


class _Recorder(logging.Handler):
    def __init__(self, into: list[tuple[str, str]]):
        super().__init__(logging.INFO)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append((record.levelname.lower(), record.getMessage()))


def _recorder(into: list[tuple[str, str]]) -> logging.Logger:
    """The logger the mock engine hands pulumi.log to, keeping this run's messages in ``into`` (runs are sequential)."""
    logger = logging.getLogger(f"{PROJECT}.program")
    logger.handlers = [_Recorder(into)]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger
