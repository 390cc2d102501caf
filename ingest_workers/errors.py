"""The errors of the ingest workers; callers branch on ``retriable``, not on the cause's type."""

from __future__ import annotations


class IngestError(Exception):
    """Base of this package's errors."""

    retriable = False


class ProbeFailed(IngestError):
    """The source could not be read (not publishing yet, unreachable, not media)."""

    retriable = True


class LadderError(IngestError):
    """A ladder setting cannot be understood."""


class NginxFailed(IngestError):
    """nginx could not be started or did not become ready; the message names the setting to change."""
