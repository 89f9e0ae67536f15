"""The walk (mlops_policies/walk.py): which name each value is bound to, and what it skips."""

from __future__ import annotations

from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from mlops_policies.walk import leaves


def bound(props: dict[str, object]) -> list[tuple[str | None, str]]:
    return [(leaf.key, leaf.value) for leaf in leaves(props) if not leaf.via]


def test_an_env_value_is_bound_to_its_name_and_a_flags_value_to_the_flag() -> None:
    container = {"env": [{"name": "DB_PASSWORD", "value": "x1"}], "args": ["--token", "x2", "--verbose", "--user=x3", "pos"]}
    assert bound(container) == [
        ("name", "DB_PASSWORD"),
        ("DB_PASSWORD", "x1"),
        ("args", "--token"),
        ("token", "x2"),
        ("args", "--verbose"),
        ("args", "--user=x3"),
        ("args", "pos"),
    ]


def test_a_containers_args_follow_its_command_as_one_command_line() -> None:
    (leaf,) = [
        leaf for leaf in leaves({"command": ["mc"], "args": ["alias", "set", "l", "u", "k", "s"]}) if leaf.value == "s" and not leaf.via
    ]
    assert (leaf.argv, leaf.position) == (("mc", "alias", "set", "l", "u", "k", "s"), 6)


def test_values_unknown_during_preview_are_skipped() -> None:
    props = unknown_checking_proxy({"data": {"A": UNKNOWN_STRING_VALUE, "B": "known"}})
    assert bound(props) == [("B", "known")]


def test_numbers_are_leaves_and_booleans_and_nulls_are_not() -> None:
    assert bound({"port": 5000, "ratio": 0.5, "enabled": True, "missing": None}) == [("port", "5000"), ("ratio", "0.5")]
