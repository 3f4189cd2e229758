"""Bounded parsing of MQTT input and reply-topic checks (edge/inbound.py)."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.inbound import InboundError, check_reply_topic, parse_json, topic_matches

OWN = "border/KZ/T1/cmd/+/reply"


@pytest.mark.parametrize(
    "payload",
    [b"[" * 100_000, b"{" + b'"a":{' * 50_000, b"[" * 40 + b"]" * 40, b"\xff\xfe", b"", b"{"],
)
def test_hostile_json_raises_only_inbound_error(payload: bytes) -> None:
    with pytest.raises(InboundError):
        parse_json(payload, max_bytes=1 << 20, max_depth=32)


def test_size_is_checked_before_parsing() -> None:
    with pytest.raises(InboundError, match="over the limit of 1,024"):
        parse_json(b'"' + b"x" * 2000 + b'"', max_bytes=1024, max_depth=32)


def test_depth_limit_is_exact() -> None:
    assert parse_json(b"[" * 32 + b"]" * 32, max_bytes=1024, max_depth=32) is not None
    with pytest.raises(InboundError, match="deeper than 32"):
        parse_json(b"[" * 33 + b"]" * 33, max_bytes=1024, max_depth=32)
    assert parse_json(b'{"from_seq": 1, "to_seq": 2}', max_bytes=1024, max_depth=2) == {
        "from_seq": 1,
        "to_seq": 2,
    }


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=2000))
def test_any_bytes_parse_or_raise_inbound_error(payload: bytes) -> None:
    with contextlib.suppress(InboundError):
        parse_json(payload, max_bytes=1000, max_depth=8)


@settings(deadline=None, max_examples=200)
@given(
    st.recursive(st.none() | st.integers(), lambda c: st.lists(c) | st.dictionaries(st.text(), c))
)
def test_valid_json_within_limits_round_trips(value: object) -> None:
    payload = json.dumps(value).encode()
    try:
        assert parse_json(payload, max_bytes=1 << 20, max_depth=200) == value
    except InboundError as exc:
        assert "deeper" in str(exc)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("a/b", "a/b/c", False),
        ("a/b/c", "a/b", False),
        ("+/+", "a/b", True),
    ],
)
def test_topic_filter_matching(topic_filter: str, topic: str, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("replies/#", "wildcard"),
        ("border/KZ/T1/cmd/+/reply", "wildcard"),
        ("$SYS/broker/load", "system topic"),
        ("", "empty"),
        ("border/KZ/T2/cmd/ping/reply", "outside"),
        ("border/KZ/T1/crossing", "outside"),
        ("border/KZ/T1/cmd/ping/reply\x00", "NUL"),
        ("x" * 70_000, "65,535"),
    ],
)
def test_reply_topics_that_are_refused(topic: str, reason: str) -> None:
    with pytest.raises(InboundError, match=reason.replace("$", r"\$")):
        check_reply_topic(topic, [OWN])


def test_reply_topics_that_are_allowed() -> None:
    assert check_reply_topic("border/KZ/T1/cmd/ping/reply", [OWN])
    assert check_reply_topic("ops/replies/desk-3", [OWN, "ops/replies/#"])
