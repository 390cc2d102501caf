"""Request model of the moderation route (the REST twin of the edge's `mod` frame and chat commands)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from events.chat_commands import MAX_DURATION_S
from producers.models.common import Id

ModerationActionName = Literal[
    "ban", "timeout", "unban", "delete", "undelete", "slow_mode", "followers_only", "clear", "approve", "deny"
]
# Which target each action names; the moderation agent checks the rest (rights, state).
NEEDS_USER = frozenset({"ban", "timeout", "unban"})
NEEDS_MESSAGE = frozenset({"delete", "undelete", "approve", "deny"})
NEEDS_DURATION = frozenset({"timeout", "slow_mode"})
MessageId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class ModerationRequest(BaseModel):
    """A moderator's action on a stream's chat; decided (and audited) by the moderation agent."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"action": "timeout", "user_id": "u-42", "duration_s": 600, "reason": "spoilers"},
                {"action": "delete", "message_id": "m-9f2c", "reason": "slur"},
                {"action": "slow_mode", "duration_s": 30},
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

    @model_validator(mode="after")
    def _targets(self) -> ModerationRequest:
        if self.action in NEEDS_USER and not self.user_id:
            raise ValueError(f"{self.action} needs user_id")
        if self.action in NEEDS_MESSAGE and not self.message_id:
            raise ValueError(f"{self.action} needs message_id")
        if self.action in NEEDS_DURATION and self.duration_s is None:
            raise ValueError(f"{self.action} needs duration_s")
        return self
