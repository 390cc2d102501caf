"""Finding streams and matches: the browse page (live streams and upcoming matches by game, tag and
language, the facets as plain links) and the search page (channels, tournaments and teams).

Server-rendered like every page: a crawler or a browser without JavaScript gets the filtered lists
and can follow every facet; the search box in the header is a plain GET form to ``/search``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from producers.deps import ServicesDep
from producers.pagination import InvalidCursor, decode_cursor, encode_cursor
from producers.routes.search import MAX_OFFSET, hit_url
from producers.routes.tournaments import seen_matches
from producers.services import Services
from web.pages import channel_names, not_found, render, site_of, spoiler_view
from web.seo import PageMeta, clip

router = APIRouter(include_in_schema=False)

BROWSE_LIVE = 24
BROWSE_MATCHES = 20
FACET_VALUES = 20
SEARCH_PAGE = 20
FACETS = ("game", "tag", "language")
# What the API's filters accept (producers.routes: GameFilter, TagFilter, LanguageFilter).
_VALID = {
    "game": re.compile(r"^[^\x00]{1,80}$"),
    "tag": re.compile(r"^[^\x00]{1,25}$"),
    "language": re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$"),
}


def facet_links(selected: dict[str, str], name: str, values: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Each value of a facet as a link toggling it, the other facets kept (pure, unit-tested)."""
    links = []
    for value, count in values[:FACET_VALUES]:
        chosen = selected.get(name) == value
        query = {k: v for k, v in selected.items() if k != name} | ({} if chosen else {name: value})
        links.append({"value": value, "count": count, "selected": chosen, "href": browse_url(query)})
    return links


def browse_url(filters: dict[str, str]) -> str:
    ordered = {name: filters[name] for name in FACETS if filters.get(name)}
    return "/browse" + ("?" + urlencode(ordered) if ordered else "")


def _facet_values(found: list[tuple[str, int]], selected: str | None) -> list[tuple[str, int]]:
    """A selected value stays offered (to be cleared) even when nothing open has it any more."""
    if selected and selected not in {value for value, _ in found}:
        return [(selected, 0), *found]
    return found


async def _facets(services: Services, selected: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    found = await services.streams.browse_facets()
    games = dict(found["game"])
    for game, n in await services.tournaments.upcoming_games():
        games[game] = games.get(game, 0) + n
    found["game"] = sorted(games.items(), key=lambda item: (-item[1], item[0]))
    return {
        name: facet_links(selected, name, _facet_values(found[name], selected.get(name))) for name in FACETS
    }


async def _live(services: Services, filters: dict[str, str]) -> list[dict[str, Any]]:
    if not filters:
        rows, _, _ = await services.streams.live(limit=BROWSE_LIVE, cursor=None)
        return rows
    return await services.streams.live_filtered(
        game=filters.get("game"),
        tag=filters.get("tag"),
        language=filters.get("language"),
        limit=BROWSE_LIVE,
        after=None,
    )


async def _matches(services: Services, filters: dict[str, str]) -> list[dict[str, Any]]:
    """Live matches, then the upcoming ones, soonest first."""
    found = []
    for state, since in (("live", None), ("scheduled", datetime.now(UTC))):
        found += await services.tournaments.matches_after(
            state=state,
            game=filters.get("game"),
            tag=filters.get("tag"),
            language=filters.get("language"),
            starts_after=since,
            limit=BROWSE_MATCHES,
            after=None,
        )
    return found[:BROWSE_MATCHES]


@router.get("/browse", response_class=HTMLResponse)
async def browse_page(
    request: Request,
    services: ServicesDep,
    game: str | None = None,
    tag: str | None = None,
    language: str | None = None,
) -> HTMLResponse:
    """Live streams and upcoming matches by game, tag and language."""
    filters = {k: v for k, v in (("game", game), ("tag", tag), ("language", language)) if v}
    if any(not _VALID[name].match(value) for name, value in filters.items()):
        return not_found(request, services, "There is no such filter.")
    live = await _live(services, filters)
    channels = await channel_names(services, {s["channel_id"] for s in live})
    matches = await seen_matches(services, spoiler_view(request), await _matches(services, filters))
    site = site_of(services)
    what = " · ".join(filters.values())
    meta = PageMeta(
        title=f"Browse{' ' + what if what else ''} · {site.name}",
        description=clip(
            f"{len(live)} live streams and {len(matches)} matches"
            + (f" for {what}" if what else "")
            + ": browse eSports by game, tag and language."
        ),
        canonical=site.url(browse_url(filters)),
    )
    return render(
        request,
        services,
        "browse.html",
        meta,
        filters=filters,
        facets=await _facets(services, filters),
        live=live,
        channels=channels,
        matches=matches,
        clear_url=browse_url({}),
    )


@router.get("/search", response_class=HTMLResponse)
async def search_page(
    request: Request, services: ServicesDep, q: str = "", cursor: str | None = None
) -> HTMLResponse:
    """Channels, tournaments and teams matching the words typed in the search box."""
    query = " ".join(q.split())[:200].replace("\x00", "")
    try:
        offset = decode_cursor(cursor, (int,))[0] if cursor else 0
    except InvalidCursor:
        offset = MAX_OFFSET
    hits: list[dict[str, Any]] = []
    if query and offset < MAX_OFFSET:
        rows = await services.catalog.search(query, limit=SEARCH_PAGE, offset=offset)
        hits = [{**row, "url": hit_url(row)} for row in rows]
    more = len(hits) == SEARCH_PAGE and offset + SEARCH_PAGE < MAX_OFFSET
    next_url = (
        "/search?" + urlencode({"q": query, "cursor": encode_cursor(offset + SEARCH_PAGE)}) if more else None
    )
    site = site_of(services)
    meta = PageMeta(
        title=f"{query + ' · ' if query else ''}Search · {site.name}",
        description=clip(f"Channels, tournaments and teams matching {query}." if query else "Search"),
        canonical=site.url("/search" + ("?" + urlencode({"q": query}) if query else "")),
        robots="noindex",
    )
    return render(request, services, "search.html", meta, query=query, hits=hits, next_url=next_url)
