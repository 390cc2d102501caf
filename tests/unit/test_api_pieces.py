"""Pure pieces of the API: cursors, positions, stream keys, and the OpenAPI document's completeness."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from infra.kafka import Position
from infra.settings import Settings
from producers import stream_keys
from producers.consistency import InvalidPosition, parse_positions
from producers.pagination import InvalidCursor, decode_cursor, encode_cursor
from web.app import create_app


def test_cursor_round_trip() -> None:
    moment = datetime(2025, 6, 1, 18, 30, tzinfo=UTC)
    cursor = encode_cursor(moment, "stream-1")
    assert "=" not in cursor and decode_cursor(cursor, (datetime, str)) == [moment, "stream-1"]
    assert decode_cursor(encode_cursor(40), (int,)) == [40]


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "bm90IGpzb24",
        encode_cursor(1, 2),
        encode_cursor("2025-06-01T18:30:00", "x"),
        encode_cursor(-1),
        encode_cursor(True),
        encode_cursor("a\x00b", "x"),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_bad_cursors(cursor: str) -> None:
    kinds: tuple[type, ...] = (
        (int,) if cursor in (encode_cursor(-1), encode_cursor(True)) else (datetime, str)
    )
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, kinds)


def test_positions_from_headers() -> None:
    assert parse_positions(["streams:2:10, streams.lifecycle:0:5", "users:1:0"]) == [
        Position("streams", 2, 10),
        Position("streams.lifecycle", 0, 5),
        Position("users", 1, 0),
    ]
    for bad in ("streams:2", "streams:x:1", "nope:1:1", "streams:-1:2", ",".join(["users:0:1"] * 17)):
        with pytest.raises(InvalidPosition):
            parse_positions([bad])


def test_stream_keys() -> None:
    key = stream_keys.issue_key()
    assert key.secret.startswith("live_") and len(key.secret) >= 45
    assert key.key_hash == stream_keys.hash_key(key.secret) and key.secret not in key.key_hash
    assert stream_keys.matches(key.secret, key.key_hash)
    assert not stream_keys.matches(key.secret + "x", key.key_hash)
    assert key.secret not in repr(key) and key.secret not in str(key)
    assert stream_keys.issue_key().secret != key.secret


def test_openapi_is_complete() -> None:
    schema = create_app(Settings()).openapi()
    shapes: dict[str, str] = {}
    for path, operations in schema["paths"].items():
        shape = "/".join("{}" if part.startswith("{") else part for part in path.split("/"))
        assert shapes.setdefault(shape, path) == path, f"{path} and {shapes[shape]} are one template"
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert operation.get("summary") and operation.get("description"), where
            success = [code for code in operation["responses"] if code.startswith("2")]
            assert success, where
            if method != "get" and not path.startswith("/metrics"):
                errors = [code for code in operation["responses"] if code[0] in "45"]
                assert errors, f"{where} documents no error"
                for code in errors:
                    if code != "422" or "application/problem+json" in operation["responses"][code].get(
                        "content", {}
                    ):
                        assert "application/problem+json" in operation["responses"][code]["content"], (
                            where,
                            code,
                        )
    components = schema["components"]["schemas"]
    for name in ("Problem", "StreamOut", "ChannelOut", "Accepted", "TokenPair", "MatchOut", "LivePage"):
        assert "examples" in components[name], name
