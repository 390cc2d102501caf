"""Search results: channels, tournaments and teams found by full-text search."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SearchHit(BaseModel):
    """One channel, tournament or team whose name (or description, or game) matches the query."""

    kind: Literal["channel", "tournament", "team"]
    id: str = Field(description="The channel's or tournament's id; a team's name (teams have no id).")
    name: str
    detail: str = Field(
        description="The channel's description, the tournament's game, or the team's number of matches."
    )
    url: str = Field(
        description="The site page to open: the channel, the tournament, the team's latest tournament."
    )
    rank: float = Field(
        description="Relevance (PostgreSQL ts_rank; names weigh most); results are sorted by it."
    )


class SearchPage(BaseModel):
    """One page of search results, most relevant first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "query": "liquid",
                    "items": [
                        {
                            "kind": "team",
                            "id": "Team Liquid",
                            "name": "Team Liquid",
                            "detail": "3 matches",
                            "url": "/tournaments/t1...",
                            "rank": 0.0608,
                        }
                    ],
                    "next_cursor": None,
                }
            ]
        }
    )

    query: str
    items: list[SearchHit]
    next_cursor: str | None
