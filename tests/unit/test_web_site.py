"""The pages' pure parts: public URLs, the Content-Security-Policy, JSON-LD, sitemap and robots.txt."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from xml.etree import ElementTree

import pytest

from infra.settings import Settings
from web.seo import clip, robots_txt, sitemap_xml, stream_json_ld, tournament_json_ld
from web.site import Site, origin_of

NOW = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _default_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """These tests check the documented defaults: the machine's ESPORTS_* variables (a CI run on other
    ports, say) must not leak in."""
    for name in [n for n in os.environ if n.startswith("ESPORTS_")]:
        monkeypatch.delenv(name)
    yield


def site(**web: object) -> Site:
    base = Settings()
    return Site.from_settings(base.model_copy(update={"web": base.web.model_copy(update=web)}))


def stream(state: str = "live", title: str = "Grand final") -> dict[str, object]:
    return {
        "stream_id": "s-1",
        "title": title,
        "game": "CS2",
        "language": "en",
        "state": state,
        "started_at": NOW,
        "ended_at": NOW if state == "ended" else None,
        "created_at": NOW,
    }


def test_edges_default_to_both_local_nodes_and_can_be_set() -> None:
    assert site().edge_urls == ("ws://127.0.0.1:8765/", "ws://127.0.0.1:8766/")
    assert site(edge_urls=["wss://edge.example/ws"]).edge_urls == ("wss://edge.example/ws",)


def test_csp_allows_own_scripts_the_hls_tier_and_the_edges_only() -> None:
    policy = dict(d.split(" ", 1) for d in site().csp.split("; "))
    assert policy["script-src"] == "'self'"  # no inline script, no eval, no third party
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert "http://127.0.0.1:8081" in policy["media-src"] and "blob:" in policy["media-src"]
    assert policy["connect-src"].split() == [
        "'self'",
        "http://127.0.0.1:8081",
        "ws://127.0.0.1:8765",
        "ws://127.0.0.1:8766",
    ]
    assert "wss://edge.example" in site(edge_urls=["wss://edge.example/ws"]).csp


def test_public_urls() -> None:
    s = site()
    assert s.master_playlist("s-1") == "http://127.0.0.1:8081/hls/s-1/master.m3u8"
    assert s.thumbnail("s-1") == "http://127.0.0.1:8081/hls/s-1/thumb.jpg"
    assert s.url("/live/s-1") == "http://127.0.0.1:8000/live/s-1"
    assert s.rtmp_url == "rtmp://127.0.0.1:1935/live"
    assert s.srt_url.startswith("srt://127.0.0.1:9000?streamid=")
    assert origin_of("https://cdn.example:8443/hls/x") == "https://cdn.example:8443"


def test_a_live_stream_is_a_video_published_by_a_live_broadcast() -> None:
    data = stream_json_ld(site(), stream(), "Team Liquid")
    assert data["@type"] == "VideoObject" and data["name"] == "Grand final"
    assert data["publication"] == {
        "@type": "BroadcastEvent",
        "isLiveBroadcast": True,
        "startDate": NOW.isoformat(),
    }
    ended = stream_json_ld(site(), stream("ended"), "Team Liquid")
    assert ended["publication"]["isLiveBroadcast"] is False and ended["publication"]["endDate"]


def test_a_tournament_is_a_sports_event_with_its_matches() -> None:
    tournament = {"tournament_id": "t-1", "name": "Major", "game": "CS2", "starts_at": NOW, "ends_at": None}
    match = {"match_id": "m-1", "teams": ["A", "B"], "scheduled_start": NOW, "started_at": None}
    data = tournament_json_ld(site(), tournament, [match])
    assert data["@type"] == "SportsEvent" and data["sport"] == "CS2"
    (sub,) = data["subEvent"]
    assert sub["name"] == "A vs B" and [c["name"] for c in sub["competitor"]] == ["A", "B"]
    json.dumps(data)  # serialisable as the page embeds it


def test_sitemap_is_valid_xml_with_escaped_urls() -> None:
    xml = sitemap_xml([("http://x/live/a?b=1&c=2", NOW), ("http://x/", None)])
    root = ElementTree.fromstring(xml)
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    assert [u.findtext("s:loc", namespaces=ns) for u in root] == ["http://x/live/a?b=1&c=2", "http://x/"]
    assert root[0].findtext("s:lastmod", namespaces=ns) == NOW.isoformat()


def test_robots_keeps_crawlers_off_the_api_and_points_at_the_sitemap() -> None:
    text = robots_txt(site())
    assert "Disallow: /api/" in text and "Sitemap: http://127.0.0.1:8000/sitemap.xml" in text


def test_clip() -> None:
    assert clip("a  b\nc") == "a b c"
    assert len(clip("x" * 500)) == 160 and clip("x" * 500).endswith("…")
