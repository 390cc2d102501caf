"""The web pages over the real read models (the app over ASGI, the projector and lifecycle agent running):
what a crawler and a link preview get before any JavaScript, the CSP, escaping of hostile text, 404s,
the sitemap, and the chat archive route the VOD page replays.
"""

from __future__ import annotations

import html
import json
import re
import uuid
from typing import Any

import pytest

from events.chat import ChatMessageAccepted, ChatMessageDeleted
from events.ingest import IngestConnected, IngestProtocol
from tests.integration.test_api_support import ApiStack, User, api_stack, eventually, stream_state

pytestmark = pytest.mark.integration
__all__ = ["api_stack"]

HOSTILE = '</script><script>alert("x")</script> & <b>bold</b>'


async def _live_stream(stack: ApiStack, title: str, **extra: Any) -> tuple[User, dict[str, Any], str]:
    owner = await stack.register()
    channel = await stack.command(
        "POST", "/api/v1/channels", owner, {"slug": f"w-{uuid.uuid4().hex[:12]}", "display_name": "Web Ch"}
    )
    created = await stack.command(
        "POST", "/api/v1/streams", owner, {"channel_id": channel["channel_id"], "title": title, **extra}
    )
    stream_id = created["stream_id"]
    await stack.publisher.publish(
        IngestConnected(
            stream_id=stream_id, session_id=uuid.uuid4().hex, protocol=IngestProtocol.RTMP, node="t"
        )
    )
    await stream_state(stack, stream_id, "live")
    return owner, channel, stream_id


def _json_ld(page: str) -> dict[str, Any]:
    (block,) = re.findall(r'<script type="application/ld\+json">(.*?)</script>', page, re.S)
    return dict(json.loads(block))


def _meta(page: str, attribute: str, name: str) -> str:
    match = re.search(rf'<meta {attribute}="{re.escape(name)}" content="([^"]*)">', page)
    assert match, f"no {name} meta"
    return html.unescape(match.group(1))


async def test_stream_page_html_has_seo_tags_csp_and_escapes_hostile_titles(api_stack: ApiStack) -> None:
    _, channel, stream_id = await _live_stream(api_stack, HOSTILE, game="CS2")

    response = await api_stack.client.get(f"/live/{stream_id}")

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "object-src 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<script>alert("x")' not in page and "<b>bold</b>" not in page  # escaped everywhere
    assert f"<title>{html.escape(HOSTILE)} · Web Ch · " in page.replace("&#34;", "&quot;")
    assert _meta(page, "property", "og:title").startswith(HOSTILE)
    assert _meta(page, "property", "og:type") == "video.episode"
    assert _meta(page, "property", "og:image").endswith(f"/hls/{stream_id}/thumb.jpg")
    assert _meta(page, "name", "twitter:card") == "summary_large_image"
    assert _meta(page, "name", "description").startswith("Live now: ")
    assert f'<link rel="canonical" href="{api_stack.settings.api.public_url}/live/{stream_id}">' in page
    ld = _json_ld(page)
    assert ld["@type"] == "VideoObject" and ld["name"] == HOSTILE and ld["genre"] == "CS2"
    assert ld["publication"]["@type"] == "BroadcastEvent" and ld["publication"]["isLiveBroadcast"] is True
    assert "</script>" not in re.search(r"ld\+json\">(.*?)</script>", page, re.S).group(1)  # type: ignore[union-attr]
    # What the ES modules start from: the stream, its HLS and the edges, in data attributes.
    assert f'data-stream-id="{stream_id}"' in page and f'data-channel-id="{channel["channel_id"]}"' in page
    assert f'/hls/{stream_id}/master.m3u8"' in page and "data-edges='[\"ws://" in page
    assert '<script type="module" src="/static/js/stream.js">' in page
    assert not re.search(r"<script(?![^>]*(src=|ld\+json))", page)  # no inline script the CSP would block


async def test_home_lists_the_live_stream_with_its_count_and_still(api_stack: ApiStack) -> None:
    _, _, stream_id = await _live_stream(api_stack, "Home page final")

    async def listed() -> str | None:
        page = (await api_stack.client.get("/")).text
        return page if f'data-stream-id="{stream_id}"' in page else None

    page = await eventually(listed, timeout_s=30)
    card = page[page.index(f'data-stream-id="{stream_id}"') :]
    card = card[: card.index("</li>")]
    assert "Home page final" in card and 'class="count">0<' in card and f"/hls/{stream_id}/thumb.jpg" in card
    assert _json_ld(page)["@type"] == "WebSite"
    assert "<title>" in page and _meta(page, "property", "og:title")


async def test_tournament_and_match_pages(api_stack: ApiStack) -> None:
    organizer, _, stream_id = await _live_stream(api_stack, "Main cam")
    created = await api_stack.command(
        "POST",
        "/api/v1/tournaments",
        organizer,
        {"name": "Web <Major>", "game": "CS2", "starts_at": "2030-06-14T15:00:00Z"},
        expect=201,
    )
    tournament_id = created["tournament_id"]
    await api_stack.query(f"/api/v1/tournaments/{tournament_id}", after=created["positions"])
    scheduled = await api_stack.command(
        "POST",
        f"/api/v1/tournaments/{tournament_id}/matches",
        organizer,
        {"teams": ["Alpha", "Beta"], "scheduled_start": "2030-06-14T17:00:00Z", "round_name": "Final"},
        expect=201,
    )
    match_id = scheduled["match_id"]
    await api_stack.query(f"/api/v1/matches/{match_id}", after=scheduled["positions"])
    patched = await api_stack.command(
        "PATCH", f"/api/v1/streams/{stream_id}", organizer, {"match_id": match_id, "role": "main"}
    )
    await api_stack.query(f"/api/v1/matches/{match_id}", after=patched["positions"])

    page = (await api_stack.client.get(f"/tournaments/{tournament_id}")).text
    ld = _json_ld(page)
    assert ld["@type"] == "SportsEvent" and ld["name"] == "Web <Major>" and "Web &lt;Major&gt;" in page
    assert [s["name"] for s in ld["subEvent"]] == ["Alpha vs Beta"]
    assert f'href="/matches/{match_id}">1 stream<' in page

    multiview = (await api_stack.client.get(f"/matches/{match_id}")).text
    assert multiview.count('<figure class="tile"') == 1 and f"/hls/{stream_id}/master.m3u8" in multiview
    assert '<span id="match-viewers">0 watching across its streams</span>' in multiview  # combined audience
    assert _json_ld(multiview)["competitor"] == [
        {"@type": "SportsTeam", "name": "Alpha"},
        {"@type": "SportsTeam", "name": "Beta"},
    ]
    home = (await api_stack.client.get("/")).text
    assert f'href="/matches/{match_id}">Alpha vs Beta<' in home  # upcoming matches


async def test_channel_page_lists_its_live_stream(api_stack: ApiStack) -> None:
    _, channel, stream_id = await _live_stream(api_stack, "Channel <live>")

    response = await api_stack.client.get(f"/channels/{channel['slug']}")

    page = response.text
    assert response.status_code == 200 and "content-security-policy" in response.headers
    assert f'href="/live/{stream_id}"' in page and "Channel &lt;live&gt;" in page
    assert _json_ld(page) == {
        "@context": "https://schema.org",
        "@type": "Organization",
        "name": "Web Ch",
        "url": f"{api_stack.settings.api.public_url}/channels/{channel['slug']}",
    }
    stream_page = (await api_stack.client.get(f"/live/{stream_id}")).text
    assert f'href="/channels/{channel["slug"]}">Web Ch<' in stream_page
    sitemap = (await api_stack.client.get("/sitemap.xml")).text
    assert f"/channels/{channel['slug']}</loc>" in sitemap


async def test_unknown_pages_are_html_404s_and_account_pages_are_not_indexed(api_stack: ApiStack) -> None:
    for path in ("/live/nope", "/live/bad%20id!", "/tournaments/nope", "/matches/nope", "/channels/nope"):
        response = await api_stack.client.get(path)
        assert response.status_code == 404 and "text/html" in response.headers["content-type"], path
        assert "content-security-policy" in response.headers
    for path in ("/login", "/register", "/dashboard", "/notifications"):
        response = await api_stack.client.get(path)
        assert response.status_code == 200 and '<meta name="robots" content="noindex">' in response.text
    assert "Disallow: /api/" in (await api_stack.client.get("/robots.txt")).text
    static = await api_stack.client.get("/static/js/edge.js")
    assert static.status_code == 200 and "javascript" in static.headers["content-type"]


async def test_sitemap_lists_live_streams_and_tournaments(api_stack: ApiStack) -> None:
    _, _, stream_id = await _live_stream(api_stack, "Sitemap stream")

    async def listed() -> str | None:
        response = await api_stack.client.get("/sitemap.xml")
        assert response.headers["content-type"].startswith("application/xml")
        return response.text if f"/live/{stream_id}</loc>" in response.text else None

    assert (await eventually(listed, timeout_s=30)).startswith('<?xml version="1.0"')


async def test_chat_archive_by_media_time_without_hidden_messages(api_stack: ApiStack) -> None:
    owner, _, stream_id = await _live_stream(api_stack, "Archive")

    def said(text: str, media_ms: int) -> ChatMessageAccepted:
        return ChatMessageAccepted(
            message_id=str(uuid.uuid4()),
            stream_id=stream_id,
            user_id=owner.user_id,
            display_name=owner.username,
            text=text,
            media_time_ms=media_ms,
        )

    messages = [said(f"m{i}", i * 1000) for i in range(6)]
    await api_stack.publisher.publish_many(messages)
    deletion = ChatMessageDeleted(
        message_id=messages[2].message_id, stream_id=stream_id, deleted_by=owner.user_id
    )
    position = await api_stack.publisher.publish(deletion)
    url = f"/api/v1/streams/{stream_id}/chat"

    page = await api_stack.query(f"{url}?from_ms=1000&to_ms=5000&limit=2", after=[str(position)])
    assert [m["text"] for m in page["items"]] == ["m1", "m3"]  # m2 was deleted, m5 is outside
    assert page["items"][0]["media_time_ms"] == 1000 and page["items"][0]["display_name"] == owner.username
    rest = await api_stack.query(f"{url}?from_ms=1000&to_ms=5000&limit=2&cursor={page['next_cursor']}")
    assert [m["text"] for m in rest["items"]] == ["m4"] and rest["next_cursor"] is None
    everything = await api_stack.query(url)
    assert [m["text"] for m in everything["items"]] == ["m0", "m1", "m3", "m4", "m5"]

    bad = await api_stack.client.get(f"{url}?from_ms=5000&to_ms=1000")
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    missing = await api_stack.client.get("/api/v1/streams/nope/chat")
    assert missing.status_code == 404
