"""The pages: one route per page, each reading the read models through the API's own readers.

Pages are rendered on the server with everything a crawler or a link preview needs (title,
description, canonical URL, OpenGraph/Twitter tags, JSON-LD); the ES modules in ``static/js`` then
bring them to life (player, chat, polls, counts) from the ``data-*`` attributes of ``<main>``.
Account pages (dashboard, notifications) are shells filled by the browser with the user's token.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from events import points
from producers.deps import ServicesDep
from producers.routes.clips import channel_clips, find_clip
from producers.routes.tournaments import seen_matches
from producers.services import Services
from producers.spoilers import PARAM, REVEAL_PARAM, SpoilerView, hide_matches, streams_seen, view_of
from projections.bracket import bracket
from projections.queries.tournaments import match_audiences
from web.seo import (
    PageMeta,
    clip,
    clip_json_ld,
    clip_video_tags,
    match_json_ld,
    robots_txt,
    sitemap_xml,
    stream_json_ld,
    tournament_json_ld,
)
from web.site import Site

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
HLS_JS_DIST = HERE / "node_modules" / "hls.js" / "dist"
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LIVE_ON_HOME = 24
UPCOMING_ON_HOME = 8
TOURNAMENTS_SCANNED = 20
SITEMAP_LIMIT = 100
CHANNEL_STREAMS = 30
CHANNEL_CLIPS = 12

router = APIRouter(include_in_schema=False)


def install(app: FastAPI) -> None:
    """Mount the pages, the sitemap, robots.txt and the static files on the API's app."""
    app.include_router(router)
    app.mount("/static/vendor/hls", StaticFiles(directory=HLS_JS_DIST, check_dir=False), name="hls")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")


def site_of(services: Services) -> Site:
    return Site.from_settings(services.settings)


def spoiler_view(request: Request) -> SpoilerView:
    """What the page may show of match results: ``?spoilers=hide`` (kept in links by the site's
    script, which adds it for a signed-in viewer whose setting is on) and ``reveal=<match_id>``.
    Lenient: a page never fails on a malformed switch."""
    return view_of(request.query_params.get(PARAM), request.query_params.getlist(REVEAL_PARAM))


def render(
    request: Request, services: Services, template: str, meta: PageMeta, *, status: int = 200, **context: Any
) -> HTMLResponse:
    """A page with its security headers: the CSP, no sniffing, no framing, a strict referrer."""
    site = site_of(services)
    view = spoiler_view(request)
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {"site": site, "meta": meta, "spoilers": view, "reveal_url": _reveal_url(request, view), **context},
        status_code=status,
    )
    response.headers["Content-Security-Policy"] = site.csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _reveal_url(request: Request, view: SpoilerView) -> Any:
    """A template function: this page's URL with one more match revealed."""

    def reveal(match_id: str) -> str:
        more = SpoilerView(hide=True, revealed=view.revealed | {match_id})
        return f"{request.url.path}?{more.query}#match-{match_id}"

    return reveal


def not_found(request: Request, services: Services, what: str) -> HTMLResponse:
    site = site_of(services)
    meta = PageMeta(
        title=f"Not found · {site.name}", description=what, canonical=site.url("/"), robots="noindex"
    )
    return render(request, services, "not_found.html", meta, status=404, what=what)


async def channel_names(services: Services, channel_ids: set[str]) -> dict[str, dict[str, Any]]:
    rows = await services.catalog.channels_by_id(sorted(channel_ids)) if channel_ids else []
    return {row["channel_id"]: row for row in rows}


async def upcoming_matches(services: Services, limit: int) -> list[dict[str, Any]]:
    """Scheduled and live matches of the latest tournaments, soonest first."""
    tournaments, _ = await services.tournaments.tournaments(game=None, limit=TOURNAMENTS_SCANNED, cursor=None)
    names = {t["tournament_id"]: t["name"] for t in tournaments}
    rows = await services.tournaments.matches_of(list(names)) if names else []
    order = {tournament_id: index for index, tournament_id in enumerate(names)}
    rows.sort(key=lambda m: order[m["tournament_id"]])  # stable: newest tournament first, as listed
    now = datetime.now(UTC)
    matches = [
        {**m, "tournament_name": names[m["tournament_id"]]}
        for m in rows
        if m["state"] == "live" or (m["state"] == "scheduled" and (m["scheduled_start"] or now) >= now)
    ]
    matches.sort(key=lambda m: (m["state"] != "live", m["scheduled_start"] or now))
    return matches[:limit]


async def upcoming_seen(services: Services, view: SpoilerView, limit: int) -> list[dict[str, Any]]:
    """The upcoming matches as ``view`` lets them be seen (a live one's score, a final's teams)."""
    return await seen_matches(services, view, await upcoming_matches(services, limit))


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, services: ServicesDep) -> HTMLResponse:
    """Live now (most viewers first, with stills and counts), upcoming matches, recent videos."""
    site = site_of(services)
    live, _, _ = await services.streams.live(limit=LIVE_ON_HOME, cursor=None)
    ended, _ = await services.streams.streams(state="ended", channel=None, match=None, limit=8, cursor=None)
    channels = await channel_names(services, {s["channel_id"] for s in [*live, *ended]})
    view = spoiler_view(request)
    ended = streams_seen(ended, view)
    upcoming = await upcoming_seen(services, view, UPCOMING_ON_HOME)
    meta = PageMeta(
        title=f"{site.name}: live eSports streams, tournaments and matches",
        description=clip(
            f"{len(live)} live now. Watch eSports streams and tournament matches live, chat, vote in polls."
        ),
        canonical=site.url("/"),
        json_ld={
            "@context": "https://schema.org",
            "@type": "WebSite",
            "name": site.name,
            "url": site.url("/"),
        },
    )
    return render(
        request, services, "home.html", meta, live=live, ended=ended, channels=channels, upcoming=upcoming
    )


# The prediction rules of events/points.py, for the stream page's forms (the API enforces the same).
PREDICTION_LIMITS = {
    "min_outcomes": points.MIN_OUTCOMES,
    "max_outcomes": points.MAX_OUTCOMES,
    "min_window_s": points.PREDICTION_MIN_S,
    "max_window_s": points.PREDICTION_MAX_S,
    "max_title": points.MAX_TITLE_CHARS,
    "max_outcome": points.MAX_OUTCOME_CHARS,
    "max_stake": points.MAX_STAKE,
}


@router.get("/live/{stream_id}", response_class=HTMLResponse)
async def stream_page(request: Request, stream_id: str, services: ServicesDep) -> HTMLResponse:
    """A stream: the player, chat, poll, prediction and count while live; the VOD with chat replay
    once ended."""
    stream = await services.streams.stream(stream_id) if _ID.match(stream_id) else None
    if stream is None or stream["created_at"] is None:
        return not_found(request, services, f"There is no stream {stream_id}.")
    site = site_of(services)
    view = spoiler_view(request)
    stream = streams_seen([stream], view)[0]
    channel = await services.catalog.channel(stream["channel_id"])
    channel_name = channel["display_name"] if channel else "a channel"
    moderators = await services.catalog.moderators(stream["channel_id"]) if channel else []
    match = await services.tournaments.match(stream["match_id"]) if stream["match_id"] else None
    match = (await seen_matches(services, view, [match]))[0] if match else None
    state_words = {"live": "Live now", "ended": "Video", "scheduled": "Scheduled", "created": "Coming up"}
    meta = PageMeta(
        title=f"{stream['title']} · {channel_name} · {site.name}",
        description=clip(
            f"{state_words[stream['state']]}: {stream['title']} by {channel_name}"
            + (f", {stream['game']}" if stream["game"] else "")
            + ". Watch with live chat and polls."
        ),
        canonical=site.url(f"/live/{stream_id}"),
        og_type="video.other" if stream["state"] == "ended" else "video.episode",
        image=site.thumbnail(stream_id),
        json_ld=stream_json_ld(site, stream, channel_name),
    )
    return render(
        request,
        services,
        "stream.html",
        meta,
        stream=stream,
        channel=channel,
        moderator_ids=[m["user_id"] for m in moderators],
        match=match,
        mode="vod" if stream["state"] == "ended" else "live",
        prediction_limits=PREDICTION_LIMITS,
    )


@router.get("/channels/{channel}", response_class=HTMLResponse)
async def channel_page(request: Request, channel: str, services: ServicesDep) -> HTMLResponse:
    """A channel: what it streams now, what is coming, its past videos."""
    row = await services.catalog.channel(channel) if _ID.match(channel) else None
    if row is None:
        return not_found(request, services, f"There is no channel {channel}.")
    site = site_of(services)
    streams, _ = await services.streams.streams(
        state=None, channel=row["channel_id"], match=None, limit=CHANNEL_STREAMS, cursor=None
    )
    streams = streams_seen(streams, spoiler_view(request))
    meta = PageMeta(
        title=f"{row['display_name']} · {site.name}",
        description=clip(row["description"] or f"{row['display_name']}: live eSports streams and videos."),
        canonical=site.url(f"/channels/{row['slug']}"),
        og_type="profile",
        json_ld={
            "@context": "https://schema.org",
            "@type": "Organization",
            "name": row["display_name"],
            "url": site.url(f"/channels/{row['slug']}"),
        },
    )
    clips, _ = await channel_clips(services, row["channel_id"], limit=CHANNEL_CLIPS, cursor=None)
    return render(request, services, "channel.html", meta, channel=row, streams=streams, clips=clips)


@router.get("/clips/{clip_id}", response_class=HTMLResponse)
async def clip_page(request: Request, clip_id: str, services: ServicesDep) -> HTMLResponse:
    """A clip: its MP4 in a plain ``<video>``, with ``og:video`` tags for link previews."""
    row = await find_clip(services, clip_id)  # pending too long: failed (no node holds it)
    if row is None:
        return not_found(request, services, f"There is no clip {clip_id}.")
    site = site_of(services)
    channel = await services.catalog.channel(row["channel_id"]) if row["channel_id"] else None
    stream = await services.streams.stream(row["stream_id"])
    channel_name = channel["display_name"] if channel else "a channel"
    title = row["title"] or (f"Clip of {stream['title']}" if stream and stream["title"] else "Clip")
    ready = row["status"] == "ready"
    meta = PageMeta(
        title=f"{title} · {channel_name} · {site.name}",
        description=clip(f"A clip by a viewer of {channel_name}" + (f": {title}." if row["title"] else ".")),
        canonical=site.url(f"/clips/{clip_id}"),
        og_type="video.other",
        image=site.thumbnail(row["stream_id"]),
        robots="index,follow" if ready else "noindex",
        extra=clip_video_tags(row) if ready else {},
        json_ld=clip_json_ld(site, row, title, channel_name) if ready else None,
    )
    return render(request, services, "clip.html", meta, clip=row, title=title, channel=channel, stream=stream)


@router.get("/tournaments/{tournament_id}", response_class=HTMLResponse)
async def tournament_page(request: Request, tournament_id: str, services: ServicesDep) -> HTMLResponse:
    """A tournament: its bracket, schedule, results, and each match's streams."""
    tournament = await services.tournaments.tournament(tournament_id) if _ID.match(tournament_id) else None
    if tournament is None:
        return not_found(request, services, f"There is no tournament {tournament_id}.")
    site = site_of(services)
    view = spoiler_view(request)
    matches = hide_matches(await services.tournaments.matches(tournament_id), view)
    streams = await asyncio.gather(*(services.streams.of_match(m["match_id"]) for m in matches))
    streams = [streams_seen(s, view) for s in streams]
    meta = PageMeta(
        title=f"{tournament['name']} · {site.name}",
        description=clip(f"{tournament['name']} ({tournament['game']}): schedule, results and live matches."),
        canonical=site.url(f"/tournaments/{tournament_id}"),
        json_ld=tournament_json_ld(site, tournament, matches),
    )
    audiences = await _audiences(services, [m["match_id"] for m in matches])
    rows = [{**m, **audiences[m["match_id"]], "streams": s} for m, s in zip(matches, streams, strict=True)]
    return render(
        request,
        services,
        "tournament.html",
        meta,
        tournament=tournament,
        matches=rows,
        rounds=bracket(matches),
    )


@router.get("/matches/{match_id}", response_class=HTMLResponse)
async def match_page(request: Request, match_id: str, services: ServicesDep) -> HTMLResponse:
    """A match's simultaneous streams side by side (multi-view of up to four players)."""
    match = await services.tournaments.match(match_id) if _ID.match(match_id) else None
    if match is None:
        return not_found(request, services, f"There is no match {match_id}.")
    site = site_of(services)
    view = spoiler_view(request)
    match = (await seen_matches(services, view, [match]))[0]
    tournament = await services.tournaments.tournament(match["tournament_id"])
    streams = streams_seen(await services.streams.of_match(match_id), view)
    watchable = [s for s in streams if s["state"] in ("live", "ended")][:4]
    title = " vs ".join(match["teams"])
    meta = PageMeta(
        title=f"{title} · {tournament['name'] if tournament else ''} · {site.name}",
        description=clip(f"{title}, {match['round_name']}: watch {len(watchable)} streams side by side."),
        canonical=site.url(f"/matches/{match_id}"),
        json_ld=match_json_ld(site, tournament, match) if tournament else None,
    )
    audience = (await _audiences(services, [match_id]))[match_id]
    return render(
        request,
        services,
        "match.html",
        meta,
        match={**match, **audience},
        tournament=tournament,
        streams=watchable,
    )


async def _audiences(services: Services, match_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each match's combined audience (distinct viewers across its streams), as the API shows it."""
    return await match_audiences(services.redis, services.namespace.redis_prefix, match_ids)


def _account_page(request: Request, services: Services, template: str, title: str) -> HTMLResponse:
    site = site_of(services)
    meta = PageMeta(
        title=f"{title} · {site.name}",
        description=title,
        canonical=site.url(request.url.path),
        robots="noindex",
    )
    return render(request, services, template, meta)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, services: ServicesDep) -> HTMLResponse:
    """Sign in."""
    return _account_page(request, services, "login.html", "Sign in")


@router.get("/register", response_class=HTMLResponse)
async def register_page(request: Request, services: ServicesDep) -> HTMLResponse:
    """Create an account."""
    return _account_page(request, services, "register.html", "Create an account")


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard_page(request: Request, services: ServicesDep) -> HTMLResponse:
    """The streamer's dashboard: channels, stream key, OBS settings, live state (filled by the browser)."""
    return _account_page(request, services, "dashboard.html", "Creator dashboard")


@router.get("/notifications", response_class=HTMLResponse)
async def notifications_page(request: Request, services: ServicesDep) -> HTMLResponse:
    """The notification inbox (filled by the browser from GET /api/v1/me/notifications)."""
    return _account_page(request, services, "notifications.html", "Notifications")


@router.get("/sitemap.xml")
async def sitemap(services: ServicesDep) -> Response:
    """The home page, live and recent streams, tournaments."""
    site = site_of(services)
    live, _, _ = await services.streams.live(limit=SITEMAP_LIMIT, cursor=None)
    ended, _ = await services.streams.streams(
        state="ended", channel=None, match=None, limit=SITEMAP_LIMIT, cursor=None
    )
    tournaments, _ = await services.tournaments.tournaments(game=None, limit=SITEMAP_LIMIT, cursor=None)
    urls: list[tuple[str, datetime | None]] = [(site.url("/"), None)]
    urls += [(site.url(f"/live/{s['stream_id']}"), s.get("started_at")) for s in live]
    urls += [(site.url(f"/live/{s['stream_id']}"), s.get("ended_at")) for s in ended]
    urls += [(site.url(f"/tournaments/{t['tournament_id']}"), t.get("created_at")) for t in tournaments]
    channels, _ = await services.catalog.channels(owner=None, limit=SITEMAP_LIMIT, cursor=None)
    urls += [(site.url(f"/channels/{c['slug']}"), c.get("updated_at")) for c in channels]
    return Response(sitemap_xml(urls), media_type="application/xml")


@router.get("/robots.txt", response_class=PlainTextResponse)
async def robots(services: ServicesDep) -> PlainTextResponse:
    """What crawlers may read, and where the sitemap is."""
    return PlainTextResponse(robots_txt(site_of(services)))
