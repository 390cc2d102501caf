"""WHIP ingest's pure parts: request validation, the relay's frame rate and clock, the session source."""

from __future__ import annotations

from fractions import Fraction

import pytest

from events.ingest import IngestProtocol
from ingest_workers.control import MAX_KEY_LENGTH
from ingest_workers.webrtc_relay import DEFAULT_RATE, RTP_WRAP, _Clock, frame_rate
from ingest_workers.whip import MAX_OFFER_BYTES, WhipRefused, bearer_key, read_offer, whip_source

OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"


def _refused(call: object, *args: object) -> WhipRefused:
    with pytest.raises(WhipRefused) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


@pytest.mark.parametrize("header", ["Bearer sk_live_1", "bearer sk_live_1", "  Bearer   sk_live_1  "])
def test_the_bearer_token_is_the_stream_key(header: str) -> None:
    assert bearer_key(header) == "sk_live_1"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic c2s6", "sk_live_1"])
def test_a_missing_bearer_token_is_401(header: str | None) -> None:
    refused = _refused(bearer_key, header)
    assert refused.status == 401 and "Authorization: Bearer" in refused.message


def test_an_overlong_key_is_refused_like_a_wrong_one() -> None:
    refused = _refused(bearer_key, "Bearer " + "k" * (MAX_KEY_LENGTH + 1))
    assert refused.status == 403
    assert "k" * 10 not in refused.message  # the key is never echoed


@pytest.mark.parametrize(
    "content_type", ["application/sdp", "Application/SDP", "application/sdp; charset=utf-8"]
)
def test_an_sdp_offer_is_read(content_type: str) -> None:
    assert read_offer(content_type, OFFER.encode()) == OFFER


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/json", "application/sdpx"])
def test_anything_but_application_sdp_is_415(content_type: str | None) -> None:
    assert _refused(read_offer, content_type, OFFER.encode()).status == 415


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "start with 'v=0'"),
        (b"hello", "start with 'v=0'"),
        (b'{"sdp": "v=0"}', "start with 'v=0'"),
        (b"v=0\r\ns=-\r\nt=0 0\r\n", "no audio or video"),
        (b"v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n", "no audio or video"),
        (b"v=0\r\n\xff\xfe", "not UTF-8"),
    ],
)
def test_a_body_that_is_not_an_sdp_offer_is_400(body: bytes, reason: str) -> None:
    refused = _refused(read_offer, "application/sdp", body)
    assert refused.status == 400 and reason in refused.message


def test_a_large_offer_is_413() -> None:
    body = (OFFER + "a=x\r\n" * MAX_OFFER_BYTES).encode()
    assert _refused(read_offer, "application/sdp", body).status == 413


@pytest.mark.parametrize(
    ("intervals", "rate"),
    [
        ([1 / 60] * 9, 60),
        ([1 / 30] * 9, 30),
        ([0.1] * 9, 10),
        ([1 / 29.97] * 9, 30),
        ([1 / 25, 2 / 25, 1 / 25, 1 / 25, 1 / 25], 25),  # a lost frame does not move the median
        ([0.0, 1 / 60, 1 / 60, 1 / 60], 60),  # nor a repeated timestamp
        ([], DEFAULT_RATE),
        ([0.0, -1.0], DEFAULT_RATE),
    ],
)
def test_the_frame_rate_is_the_nearest_common_rate_of_the_median_interval(
    intervals: list[float], rate: int
) -> None:
    assert frame_rate(intervals) == rate


def test_the_clock_starts_at_arrival_and_follows_the_sender() -> None:
    clock = _Clock(origin=100.0, time_base=Fraction(1, 90000))
    assert clock.next(100.5, 1_000_000) == 45000  # anchored at the first frame's arrival
    assert clock.next(100.9, 1_003_000) == 48000  # then the sender's step, not the arrival jitter
    assert clock.next(100.91, 1_006_000) == 51000


def test_the_clock_survives_rtp_wraparound_and_never_steps_back() -> None:
    clock = _Clock(origin=0.0, time_base=Fraction(1, 90000))
    first = clock.next(0.0, RTP_WRAP - 1500)
    assert clock.next(0.0, 1500) == first + 3000  # 32-bit wrap: still 3000 ticks later
    reordered = clock.next(0.0, 0)  # a frame older than the last
    assert reordered == first + 3001
    assert clock.next(0.0, 0) == reordered + 1
    assert clock.next(0.0, 4500) == reordered + 1 + 3000  # the sender's step from its newest frame
    assert clock.next(0.0, 4500) == reordered + 3002  # a repeated timestamp still moves forward


def test_the_session_reads_the_relay_as_whip_with_a_probe_that_meets_a_keyframe() -> None:
    source = whip_source(40000, keyframe_s=2.0)
    assert source.protocol is IngestProtocol.WHIP and source.live
    assert source.input_args[-1].startswith("udp://127.0.0.1:40000?")
    for args in (source.input_args, source.probe_args):
        assert args[args.index("-analyzeduration") + 1] == "5000000"  # two keyframe intervals and a second
        assert args[args.index("-protocol_whitelist") + 1] == "udp"
