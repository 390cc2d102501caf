"""Request model of the moderation route (the REST twin of the edge's `mod` frame and chat commands)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from events.chat_commands import MAX_DURATION_S
from producers.models.common import NO_NUL, Id, _clean_text

ModerationActionName = Literal[
    "ban",
    "timeout",
    "unban",
    "delete",
    "undelete",
    "slow_mode",
    "followers_only",
    "clear",
    "approve",
    "deny",
    "unique_chat",
    "link_policy",
    "block_term",
    "unblock_term",
]
# Which target each action names; the moderation agent checks the rest (rights, state).
NEEDS_USER = frozenset({"ban", "timeout", "unban"})
NEEDS_MESSAGE = frozenset({"delete", "undelete", "approve", "deny"})
NEEDS_DURATION = frozenset({"timeout", "slow_mode"})
NEEDS_TERM = frozenset({"block_term", "unblock_term"})
MAX_TERM_CHARS = 100
MAX_ALLOWLIST = 50
MessageId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
# A host name: dot-separated labels of letters, digits and inner hyphens (IDN letters too).
_DOMAIN = re.compile(r"(?:www\.)?(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W_](?:[\w-]{0,61}[^\W_])?")


def _term(value: str) -> str:
    value = " ".join(_clean_text(value).split())
    if not any(c.isalnum() for c in value):
        raise ValueError("a term needs at least one letter or digit")
    return value


def _domain(value: str) -> str:
    value = value.strip().lower()
    if len(value) > 253 or not _DOMAIN.fullmatch(value):
        raise ValueError(f"{value[:60]!r} is not a domain name (e.g. example.com)")
    return value


Term = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_TERM_CHARS, pattern=NO_NUL), AfterValidator(_term)
]
Domain = Annotated[str, StringConstraints(min_length=1, max_length=253), AfterValidator(_domain)]


class ModerationRequest(BaseModel):
    """A moderator's action on a stream's chat; decided (and audited) by the moderation agent."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"action": "timeout", "user_id": "u-42", "duration_s": 600, "reason": "spoilers"},
                {"action": "delete", "message_id": "m-9f2c", "reason": "slur"},
                {"action": "slow_mode", "duration_s": 30},
                {"action": "block_term", "term": "spoiler"},
                {"action": "link_policy", "link_policy": "allowlist", "link_allowlist": ["example.com"]},
                {"action": "unique_chat", "enabled": True},
            ]
        },
    )

    action: ModerationActionName
    user_id: Id | None = Field(None, description="Target user (ban, timeout, unban).")
    message_id: MessageId | None = Field(
        None, description="Target message (delete, undelete, approve, deny)."
    )
    reason: Annotated[str, StringConstraints(max_length=500)] = Field(
        "", description="Shown in the audit log."
    )
    duration_s: int | None = Field(
        None, ge=0, le=MAX_DURATION_S, description="timeout length; slow mode interval (0 turns it off)."
    )
    term: Term | None = Field(None, description="The term to block or unblock (block_term, unblock_term).")
    link_policy: Literal["allow", "deny", "allowlist"] | None = Field(
        None, description="Links in chat: allow (risky ones held), deny, or allowlist (link_policy)."
    )
    link_allowlist: list[Domain] = Field(
        default_factory=list,
        max_length=MAX_ALLOWLIST,
        description="The allowed domains and their subdomains, with link_policy allowlist only.",
    )
    enabled: bool | None = Field(None, description="Unique chat on (true) or off (false) (unique_chat).")

    @model_validator(mode="after")
    def _targets(self) -> ModerationRequest:
        if self.action in NEEDS_USER and not self.user_id:
            raise ValueError(f"{self.action} needs user_id")
        if self.action in NEEDS_MESSAGE and not self.message_id:
            raise ValueError(f"{self.action} needs message_id")
        if self.action in NEEDS_DURATION and self.duration_s is None:
            raise ValueError(f"{self.action} needs duration_s")
        return self._rule_fields()

    def _rule_fields(self) -> ModerationRequest:
        if (self.term is not None) != (self.action in NEEDS_TERM):
            raise ValueError(
                f"{self.action} needs term" if self.term is None else f"term is not for {self.action}"
            )
        if (self.link_policy is not None) != (self.action == "link_policy"):
            raise ValueError(
                "link_policy needs link_policy"
                if self.link_policy is None
                else "link_policy is not for " + self.action
            )
        if (self.link_policy == "allowlist") != bool(self.link_allowlist):
            raise ValueError(
                "link_allowlist is only for link_policy allowlist"
                if self.link_allowlist
                else "link_policy allowlist needs at least one domain in link_allowlist"
            )
        if (self.enabled is not None) != (self.action == "unique_chat"):
            raise ValueError(
                "unique_chat needs enabled" if self.enabled is None else f"enabled is not for {self.action}"
            )
        return self
