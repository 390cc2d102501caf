"""What search engines and link previews read: page metadata, JSON-LD and the sitemap.

Pure functions of read-model rows; the templates render them (JSON-LD through ``tojson``, which
escapes ``<``, ``>`` and ``&`` so a title can never close the script block).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from web.site import Site

DESCRIPTION_MAX = 160


@dataclass(frozen=True, slots=True)
class PageMeta:
    """Title, description, canonical URL, preview image and JSON-LD of one page."""

    title: str
    description: str
    canonical: str
    og_type: str = "website"
    image: str | None = None
    json_ld: dict[str, Any] | None = None
    robots: str = "index,follow"
    extra: dict[str, str] = field(default_factory=dict)


def clip(text: str, limit: int = DESCRIPTION_MAX) -> str:
    """One line of at most ``limit`` characters (an ellipsis marks a cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def stream_json_ld(site: Site, stream: dict[str, Any], channel_name: str) -> dict[str, Any]:
    """A live stream as a VideoObject published by a live BroadcastEvent; an ended one as a VideoObject."""
    url = site.url(f"/live/{stream['stream_id']}")
    video: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "VideoObject",
        "name": stream["title"],
        "description": clip(
            f"{stream['title']} by {channel_name}" + (f" ({stream['game']})" if stream["game"] else "")
        ),
        "thumbnailUrl": [site.thumbnail(stream["stream_id"])],
        "uploadDate": _iso(stream.get("started_at") or stream.get("created_at")),
        "url": url,
        "contentUrl": site.master_playlist(stream["stream_id"]),
        "genre": stream["game"] or None,
        "inLanguage": stream.get("language") or None,
    }
    if stream["state"] == "live":
        video["publication"] = {
            "@type": "BroadcastEvent",
            "isLiveBroadcast": True,
            "startDate": _iso(stream.get("started_at")),
        }
    elif stream["state"] == "ended":
        video["publication"] = {
            "@type": "BroadcastEvent",
            "isLiveBroadcast": False,
            "startDate": _iso(stream.get("started_at")),
            "endDate": _iso(stream.get("ended_at")),
        }
    return {k: v for k, v in video.items() if v is not None}


def clip_video_tags(row: dict[str, Any]) -> dict[str, str]:
    """The OpenGraph video tags of a ready clip: its MP4, type, size of the source and duration."""
    seconds = str(round((row["duration_ms"] or 0) / 1000))
    tags = {"og:video": row["url"], "og:video:type": "video/mp4", "video:duration": seconds}
    if row["url"].startswith("https://"):
        tags["og:video:secure_url"] = row["url"]
    return tags


def clip_json_ld(site: Site, row: dict[str, Any], title: str, channel_name: str) -> dict[str, Any]:
    """A clip as a VideoObject (ISO 8601 duration, its MP4 as the content)."""
    return {
        "@context": "https://schema.org",
        "@type": "VideoObject",
        "name": title,
        "description": clip(f"{title}, a clip of {channel_name}"),
        "thumbnailUrl": [site.thumbnail(row["stream_id"])],
        "uploadDate": _iso(row["created_at"]),
        "duration": f"PT{(row['duration_ms'] or 0) / 1000:.1f}S",
        "url": site.url(f"/clips/{row['clip_id']}"),
        "contentUrl": row["url"],
    }


def tournament_json_ld(
    site: Site, tournament: dict[str, Any], matches: list[dict[str, Any]]
) -> dict[str, Any]:
    """A tournament as a SportsEvent whose sub-events are its matches (teams as competitors)."""
    return {
        "@context": "https://schema.org",
        "@type": "SportsEvent",
        "name": tournament["name"],
        "sport": tournament["game"],
        "startDate": _iso(tournament["starts_at"]),
        "endDate": _iso(tournament.get("ends_at")),
        "eventAttendanceMode": "https://schema.org/OnlineEventAttendanceMode",
        "location": {
            "@type": "VirtualLocation",
            "url": site.url(f"/tournaments/{tournament['tournament_id']}"),
        },
        "url": site.url(f"/tournaments/{tournament['tournament_id']}"),
        "subEvent": [
            {
                "@type": "SportsEvent",
                "name": " vs ".join(m["teams"]),
                "startDate": _iso(m.get("started_at") or m.get("scheduled_start")),
                "competitor": [{"@type": "SportsTeam", "name": t} for t in m["teams"]],
                "url": site.url(f"/matches/{m['match_id']}"),
            }
            for m in matches
        ],
    }


def match_json_ld(site: Site, tournament: dict[str, Any], match: dict[str, Any]) -> dict[str, Any]:
    """One match as a SportsEvent, part of its tournament."""
    event = tournament_json_ld(site, tournament, [match])["subEvent"][0]
    return {
        "@context": "https://schema.org",
        **event,
        "superEvent": {"@type": "SportsEvent", "name": tournament["name"]},
        "eventStatus": "https://schema.org/EventScheduled",
    }


def sitemap_xml(urls: list[tuple[str, datetime | None]]) -> str:
    """A sitemap of absolute ``urls`` with their last modification (when known)."""
    entries = []
    for loc, modified in urls:
        lastmod = f"<lastmod>{modified.isoformat()}</lastmod>" if modified else ""
        entries.append(f"<url><loc>{escape(loc)}</loc>{lastmod}</url>")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">' + "".join(entries) + "</urlset>\n"
    )


def robots_txt(site: Site) -> str:
    """Crawl the pages, not the API or the account pages; where the sitemap is."""
    return (
        "User-agent: *\n"
        "Disallow: /api/\n"
        "Disallow: /dashboard\n"
        "Disallow: /notifications\n"
        "Disallow: /login\n"
        "Disallow: /register\n"
        f"Sitemap: {site.url('/sitemap.xml')}\n"
    )
