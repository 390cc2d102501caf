"""Request model of the moderation route (the REST twin of the edge's `mod` frame and chat commands)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from events.chat_commands import (
    MAX_ALLOWLIST,
    MAX_DURATION_S,
    MAX_TERM_CHARS,
    domain_name,
    rule_fields_problem,
)
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
MessageId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def _term(value: str) -> str:
    value = " ".join(_clean_text(value).split())
    if not any(c.isalnum() for c in value):
        raise ValueError("a term needs at least one letter or digit")
    return value


Term = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_TERM_CHARS, pattern=NO_NUL), AfterValidator(_term)
]
Domain = Annotated[str, StringConstraints(min_length=1, max_length=253), AfterValidator(domain_name)]


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
        problem = rule_fields_problem(
            self.action,
            term=self.term,
            link_policy=self.link_policy,
            link_allowlist=self.link_allowlist,
            enabled=self.enabled,
        )
        if problem:
            raise ValueError(problem)
        return self
