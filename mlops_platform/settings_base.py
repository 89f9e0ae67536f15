"""What every component's settings model is built from: the base model, the shared value types and the error.

Each component's ``settings.py`` defines its block of the stack config from these; ``mlops_platform.config``
assembles the blocks into the root ``PlatformConfig`` and checks the rules between them. This module imports
nothing of the components, so any settings module can use it without an import cycle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, TypeVar

import pulumi
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

PROJECT = "mlops-platform"


class ConfigError(pulumi.RunError):
    """Invalid stack config. RunError makes Pulumi print the message, not a traceback."""


class KeyRuleError(ValueError):
    """A rule about a specific key (relative to the model that raised it)."""

    def __init__(self, key: str, message: str, quotes_value: bool = True):
        super().__init__(message)
        self.key = key
        self.message = message
        # A message that quotes no value may be shown for a secret key too.
        self.quotes_value = quotes_value


_STORAGE = re.compile(r"^[1-9][0-9]*(Mi|Gi|Ti)$")
_CPU = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$")
_MEMORY = re.compile(r"^[1-9][0-9]*(Mi|Gi)$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*[A-Za-z0-9]$|^[A-Za-z0-9]$")
_IMAGE = re.compile(r"^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]+)?(@sha256:[0-9a-f]{64})?$")
_ARN = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:[0-9]{0,12}:.+$")
# No wildcards: the AuthorizationPolicy must admit the named identities and nothing else.
_PRINCIPAL = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/ns/[a-z0-9]([-a-z0-9]*[a-z0-9])?/sa/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class Allowed:
    """What a value may be, in words, beside a validator whose rule has no pattern: the configuration reference shows it."""

    words: str


@dataclass(frozen=True)
class Pattern:
    """A string rule: ``pattern`` must match; ``allowed`` says in words what does (in the error and the reference)."""

    pattern: re.Pattern[str]
    allowed: str

    def __call__(self, value: str) -> str:
        if not self.pattern.match(value):
            raise ValueError(f"{value!r} is not valid; allowed: {self.allowed}")
        return value


def check(pattern: re.Pattern[str], allowed: str) -> AfterValidator:
    """A validator that refuses a value ``pattern`` does not match, saying what is ``allowed``."""
    return AfterValidator(Pattern(pattern, allowed))


def _pinned(value: str) -> str:
    if not _IMAGE.match(value):
        raise ValueError(f"{value!r} is not an image reference; allowed: registry/repository:tag or @sha256:digest")
    tag = value.rsplit("/", 1)[-1]
    if "@sha256:" not in value and (":" not in tag or tag.endswith(":latest")):
        raise ValueError(f"{value!r} is not pinned; allowed: an explicit version tag (not latest) or a digest")
    return value


def _labels(value: dict[str, str]) -> dict[str, str]:
    for key, item in value.items():
        if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(item):
            raise ValueError(f"{key}={item!r} is not a valid label; allowed: Kubernetes label keys and values, e.g. release: prometheus")
    return value


Storage = Annotated[str, check(_STORAGE, "a whole number with Mi, Gi or Ti, e.g. 20Gi")]
Cpu = Annotated[str, check(_CPU, "cores like 0.5 or millicores like 500m")]
Memory = Annotated[str, check(_MEMORY, "a whole number with Mi or Gi, e.g. 512Mi")]
DnsLabel = Annotated[str, check(_DNS_LABEL, "a DNS-1123 label: lowercase letters, digits and '-', at most 63")]
DnsName = Annotated[str, check(_DNS_NAME, "a lowercase DNS name, e.g. kubeflow.example.com")]
KeyPrefix = Annotated[str, check(_PREFIX, "an S3 key prefix without leading or trailing '/', e.g. mlflow")]
Image = Annotated[str, AfterValidator(_pinned), Allowed("a pinned image: registry/repository:tag (not latest) or @sha256:digest")]
Arn = Annotated[str, check(_ARN, "an AWS ARN, e.g. arn:aws:iam::123456789012:oidc-provider/...")]
Principal = Annotated[str, check(_PRINCIPAL, "an Istio principal without wildcards, e.g. cluster.local/ns/team-a/sa/default-editor")]
Labels = Annotated[dict[str, str], AfterValidator(_labels), Allowed("Kubernetes label keys and values")]


# A CronJob's schedule as kube-apiserver v1.34 validates it (pkg/apis/batch/validation/validation.go,
# validateScheduleFormat): robfig/cron v3.0.1's ParseStandard (parser.go: five fields or a descriptor; spec.go:
# the fields' bounds and names), and no TZ or CRON_TZ in the schedule.
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}),
    ("day of week", 0, 6, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}),
)
_CRON_DESCRIPTORS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
# What Go's time.ParseDuration reads, e.g. 1h30m.
_GO_DURATION = re.compile(r"^[+-]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)$")
_GO_INT = re.compile(r"^[+-]?[0-9]+$")
CRON_ALLOWED = (
    "a CronJob schedule: five fields (minute hour day-of-month month day-of-week: numbers, JAN-DEC, SUN-SAT, ranges, "
    "steps, lists, '*'), e.g. '15 2 * * *', or @hourly, @daily, @weekly, @monthly, @yearly, '@every 6h'"
)


class _NotCron(ValueError):
    """Why a schedule is not one the apiserver admits."""


def _cron_value(text: str, names: dict[str, int]) -> int:
    """A field's number or name."""
    if text.lower() in names:
        return names[text.lower()]
    if not _GO_INT.match(text):
        raise _NotCron(f"{text!r} is not a number")
    number = int(text)
    if number < 0:
        raise _NotCron(f"{text!r} is negative")
    return number


def _check_range(expr: str, low: int, high: int, names: dict[str, int]) -> None:
    """``expr`` (number, a-b, */n, a/n, a-b/n) is a range of the field, or _NotCron says why not."""
    range_and_step = expr.split("/")
    if len(range_and_step) > 2:
        raise _NotCron(f"too many slashes in {expr!r}")
    bounds = range_and_step[0].split("-")
    if bounds[0] in ("*", "?"):
        start, end = low, high
    elif len(bounds) > 2:
        raise _NotCron(f"too many hyphens in {expr!r}")
    else:
        start = _cron_value(bounds[0], names)
        end = _cron_value(bounds[1], names) if len(bounds) == 2 else start
    step = 1
    if len(range_and_step) == 2:
        step = _cron_value(range_and_step[1], {})
        if len(bounds) == 1:
            end = high
    if start < low or end > high:
        raise _NotCron(f"{expr!r} is outside {low}-{high}")
    if start > end:
        raise _NotCron(f"{expr!r} begins after it ends")
    if step == 0:
        raise _NotCron(f"{expr!r} has a step of 0")


def cron_problem(schedule: str) -> str | None:
    """Why the apiserver would refuse ``schedule`` for a CronJob, or None."""
    if "TZ" in schedule:
        return "a time zone in the schedule; the CronJob's timeZone sets it"
    if schedule.startswith("@"):
        if schedule in _CRON_DESCRIPTORS:
            return None
        every = schedule.removeprefix("@every ")
        return None if every != schedule and _GO_DURATION.match(every) else "an unknown descriptor"
    fields = schedule.split()
    if len(fields) != len(_CRON_FIELDS):
        return f"{len(fields)} field{'' if len(fields) == 1 else 's'}, not 5"
    for text, (what, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        # parser.go splits a list with strings.FieldsFunc, which drops empty items.
        for expr in filter(None, text.split(",")):
            try:
                _check_range(expr, low, high, names)
            except _NotCron as exc:
                return f"{what}: {exc}"
    return None


def _cron(schedule: str) -> str:
    problem = cron_problem(schedule)
    if problem:
        raise ValueError(f"{schedule!r} is not a CronJob schedule ({problem}); allowed: {CRON_ALLOWED}")
    return schedule


CronSchedule = Annotated[str, AfterValidator(_cron), Allowed(CRON_ALLOWED)]


class Model(BaseModel):
    """camelCase keys as in Pulumi stack files; unknown keys are errors."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, strict=False)


class Resources(Model):
    """Requests and limits of one container."""

    cpu_request: Cpu = Field(default="100m", description="CPU the container is guaranteed.")
    cpu_limit: Cpu = Field(default="1", description="CPU the container may use at most.")
    memory_request: Memory = Field(default="256Mi", description="Memory the container is guaranteed.")
    memory_limit: Memory = Field(default="1Gi", description="Memory the container may use at most (beyond it the kernel kills it).")


def quantity_bytes(quantity: str) -> int:
    """``512Mi`` -> bytes (the Storage forms only: Mi, Gi, Ti)."""
    units = {"Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    return int(quantity[:-2]) * units[quantity[-2:]]


def keys_set(block: BaseModel, keys: Iterable[str] | None = None) -> list[str]:
    """The keys of ``block`` set to something other than their default (all fields, or only ``keys``).

    An explicit default (``profiles: []``, ``dashboardTab: true``) is not a setting that is lost.
    """
    fields = type(block).model_fields
    names = [n for n in fields if keys is None or (fields[n].alias or n) in keys]
    return [fields[n].alias or n for n in names if getattr(block, n) != fields[n].get_default(call_default_factory=True)]


# A config block with an ``enabled`` switch.
_Block = TypeVar("_Block", bound=BaseModel)


def only_when_enabled(block: _Block, name: str) -> _Block:
    """With ``enabled`` false nothing of the block is declared, so any other key set cannot take effect."""
    if getattr(block, "enabled"):  # noqa: B009 (a block with the switch; BaseModel does not declare it)
        return block
    for key in keys_set(block):
        if key != "enabled":
            raise KeyRuleError(
                key, f"set, but {name}.enabled is false; allowed: {name}.enabled true, or {name}.{key} left out", quotes_value=False
            )
    return block


def refuse_unused(block: BaseModel, path: str, keys: Iterable[str] | None, because: str, instead: str) -> None:
    """Settings the chosen target or mode never reads would be dropped without a word: refuse the first one."""
    for key in keys_set(block, keys):
        raise KeyRuleError(f"{path}.{key}", f"set, but {because}; allowed: {instead}, or {path}.{key} left out", quotes_value=False)
