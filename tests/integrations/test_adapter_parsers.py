"""The NDJSON and SSE decoders, fed the awkward splits real sockets produce."""

import json

import pytest

from integrations.adapter import error_for_status, parse_retry_after
from integrations.errors import (
    AuthError,
    BadRequest,
    NotFound,
    ProviderError,
    RateLimited,
    StreamInterrupted,
    Unavailable,
)
from integrations.streaming import NdjsonDecoder, SseDecoder


def feed_in_pieces(decoder, data: bytes, size: int) -> list:
    items = []
    for start in range(0, len(data), size):
        items.extend(decoder.feed(data[start : start + size]))
    items.extend(decoder.finish())
    return items


# --- NDJSON -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_ndjson_lines_split_across_reads_and_multibyte_utf8(size):
    objects = [{"response": "héllo"}, {"response": " 日本語 🎉"}, {"done": True}]
    data = b"".join(json.dumps(o, ensure_ascii=False).encode() + b"\n" for o in objects)
    assert feed_in_pieces(NdjsonDecoder(), data, size) == objects


def test_ndjson_skips_blank_lines_and_accepts_crlf():
    data = b'\n{"a": 1}\r\n\r\n   \n{"b": 2}\n'
    assert feed_in_pieces(NdjsonDecoder(), data, 4) == [{"a": 1}, {"b": 2}]


def test_ndjson_last_line_without_newline_counts():
    assert feed_in_pieces(NdjsonDecoder(), b'{"a": 1}\n{"done": true}', 5) == [
        {"a": 1},
        {"done": True},
    ]


def test_ndjson_error_line_is_just_data_for_the_client():
    data = b'{"response": "x", "done": false}\n{"error": "boom"}\n'
    assert feed_in_pieces(NdjsonDecoder(), data, 3)[-1] == {"error": "boom"}


def test_ndjson_malformed_line_is_a_retryable_interruption():
    with pytest.raises(StreamInterrupted) as info:
        feed_in_pieces(NdjsonDecoder(provider="ollama"), b'{"a": 1}\n{"b": \n', 100)
    assert info.value.retryable
    assert info.value.provider == "ollama"


@pytest.mark.parametrize(
    "line",
    [b'{"response": "\xff"}\n', b'{"response": "\xe6\x97"}\n', b"[1, 2\n", b"{} {}\n"],
    ids=["invalid utf-8", "a character cut short", "not closed", "two values"],
)
def test_ndjson_line_that_is_not_one_json_value_in_utf8_is_an_interruption(line):
    with pytest.raises(StreamInterrupted, match="malformed NDJSON line") as info:
        feed_in_pieces(NdjsonDecoder(provider="ollama"), b'{"a": 1}\n' + line, 100)
    assert info.value.retryable


def test_ndjson_truncated_last_line_is_an_interruption():
    with pytest.raises(StreamInterrupted):
        feed_in_pieces(NdjsonDecoder(), b'{"a": 1}\n{"b": 2', 100)


# --- SSE --------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 5, 1000])
def test_sse_events_split_anywhere_with_multibyte_utf8(size):
    data = 'data: {"t": "日本"}\n\ndata: {"t": "🎉 ok"}\n\ndata: [DONE]\n\n'.encode()
    events = feed_in_pieces(SseDecoder(), data, size)
    assert [e.data for e in events] == ['{"t": "日本"}', '{"t": "🎉 ok"}', "[DONE]"]


def test_sse_several_data_lines_join_with_newlines():
    events = SseDecoder().feed(b"data: first\ndata: second\ndata:third\n\n")
    assert [e.data for e in events] == ["first\nsecond\nthird"]


def test_sse_comments_blank_lines_event_and_id_fields():
    data = b": keep-alive\n\n\nevent: update\nid: 7\ndata: x\n\n: another comment\ndata: y\n\n"
    events = SseDecoder().feed(data)
    assert [(e.event, e.data, e.id) for e in events] == [
        ("update", "x", "7"),
        ("message", "y", "7"),
    ]


@pytest.mark.parametrize("newline", [b"\r\n", b"\r", b"\n"])
@pytest.mark.parametrize("size", [1, 3, 100])
def test_sse_any_line_ending_even_split_between_cr_and_lf(newline, size):
    data = b"data: a" + newline + newline + b"data: b" + newline + newline
    events = feed_in_pieces(SseDecoder(), data, size)
    assert [e.data for e in events] == ["a", "b"]


def test_sse_crlf_split_between_reads_is_one_line_ending():
    decoder = SseDecoder()
    events = []
    for piece in (b"data: a\r", b"\n", b"\r", b"\n", b"data: b\r", b"\ndata: c\r\n\r\n"):
        events += decoder.feed(piece)
    assert [e.data for e in events] == ["a", "b\nc"]


def test_sse_event_without_blank_line_at_end_is_dropped():
    decoder = SseDecoder()
    assert [e.data for e in decoder.feed(b"data: complete\n\ndata: partial\n")] == ["complete"]
    assert decoder.finish() == []


def test_sse_only_one_space_after_colon_is_dropped():
    assert SseDecoder().feed(b"data:  two spaces\n\n")[0].data == " two spaces"


# --- Retry-After and status mapping -----------------------------------------------------------


def test_retry_after_seconds_ms_and_http_date():
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    now = 1_700_000_000.0
    date = "Tue, 14 Nov 2023 22:13:40 GMT"  # now + 20 s
    assert parse_retry_after({"retry-after": date}, now=now) == pytest.approx(20.0)
    assert parse_retry_after({"retry-after": "garbage"}) is None
    assert parse_retry_after({}) is None


@pytest.mark.parametrize(
    ("status", "code", "error_class"),
    [
        (400, None, BadRequest),
        (401, "invalid_api_key", AuthError),
        (403, None, AuthError),
        (404, "model_not_found", NotFound),
        (413, "rate_limit_exceeded", RateLimited),
        (413, None, BadRequest),
        (422, None, BadRequest),
        (429, "rate_limit_exceeded", RateLimited),
        (498, "capacity_exceeded", Unavailable),
        (500, None, ProviderError),
        (503, None, ProviderError),
    ],
)
def test_status_mapping(status, code, error_class):
    error = error_for_status(provider="groq", status=status, message="m", code=code, request_id="r")
    assert type(error) is error_class
    assert (error.provider, error.status, error.request_id) == ("groq", status, "r")


def test_error_messages_never_carry_a_key():
    from integrations.errors import IntegrationError

    key = "gsk_" + "A1b2" * 13
    error = AuthError(f"Invalid API Key {key}; sent Authorization: Bearer {key}", provider="groq")
    for text in (str(error), error.message, repr(error), str(error.as_dict())):
        assert key not in text
        assert "A1b2A1b2" not in text
    assert "gsk_…" in error.message
    assert isinstance(error, IntegrationError)
    assert error.as_dict()["code"] == "auth_error"
