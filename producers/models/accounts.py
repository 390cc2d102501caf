"""Accounts: registration, login, tokens, users and roles."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from producers.models.common import NO_NUL, Accepted, Name, _clean_text

Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{3,32}$")]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128), AfterValidator(_clean_text)]
Role = Literal["viewer", "streamer", "admin"]


class RegisterRequest(BaseModel):
    """A new account."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"username": "caedrel", "password": "correct horse battery", "display_name": "Caedrel"}
            ]
        },
    )

    username: Username = Field(description="Unique (case-insensitive), 3-32 of A-Z a-z 0-9 _.")
    password: Password = Field(description="8-128 characters; stored only as an argon2id hash.")
    display_name: Name | None = Field(None, description="Shown name; defaults to the username.")


class LoginRequest(BaseModel):
    """Credentials for a login."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"username": "caedrel", "password": "correct horse battery"}]},
    )

    username: Annotated[
        str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL), AfterValidator(_clean_text)
    ] = Field(description="The username.")
    password: Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(_clean_text)] = (
        Field(description="The password.")
    )


class RefreshRequest(BaseModel):
    """A refresh token to rotate (or to revoke, on logout)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"refresh_token": "rt_Xq3..."}]}
    )

    refresh_token: Annotated[
        str, StringConstraints(min_length=1, max_length=200), AfterValidator(_clean_text)
    ]


class TokenPair(BaseModel):
    """A short-lived access token (JWT, HS256) and a single-use refresh token."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJIUzI1NiJ9...",
                    "token_type": "bearer",
                    "expires_in": 900,
                    "refresh_token": "rt_Xq3...",
                    "user_id": "5b0c...",
                    "role": "viewer",
                }
            ]
        }
    )

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str = Field(description="Use once at /auth/refresh; a reused token revokes the login.")
    user_id: str
    role: Role


class Registered(Accepted):
    """The account exists; log in to get tokens."""

    user_id: str
    username: str


class UserOut(BaseModel):
    """A user as everyone may see them."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user_id": "5b0c...",
                    "username": "caedrel",
                    "display_name": "Caedrel",
                    "role": "streamer",
                    "created_at": "2025-06-01T18:30:15Z",
                }
            ]
        }
    )

    user_id: str
    username: str
    display_name: str
    role: Role
    created_at: datetime


class RoleChangeRequest(BaseModel):
    """An admin sets a user's platform role."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"role": "admin"}]})

    role: Role


class PreferencesIn(BaseModel):
    """Your viewing preferences (the whole set: what is left out is reset to its default)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"spoiler_free": True}]})

    spoiler_free: bool = Field(
        False, description="Hide scores, winners, end times and results until you reveal a match."
    )


class PreferencesOut(BaseModel):
    """Your viewing preferences as the read model has them."""

    spoiler_free: bool
