"""The Kafka adapter's errors, and the one place aiokafka's exceptions become them (:func:`translate`).

Callers branch on ``.retriable``, never on aiokafka's types.
"""

from __future__ import annotations

import asyncio

from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaTimeoutError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)
from aiokafka.errors import KafkaError as DriverError

__all__ = [
    "AuthenticationFailed",
    "BrokerUnavailable",
    "KafkaError",
    "NotAuthorized",
    "NotPublished",
    "PublishFailed",
    "PublishInDoubt",
    "translate",
]


class KafkaError(Exception):
    """Base of this adapter's errors; ``retriable`` says whether trying again can help."""

    retriable = False


class BrokerUnavailable(KafkaError):
    """The cluster could not be reached or did not answer in time."""

    retriable = True


class NotPublished(BrokerUnavailable):
    """A bounded publish ran out of time before any of its records reached a broker: they were taken
    back from the client (or never handed to it), so none of them is published, now or later."""


class PublishInDoubt(BrokerUnavailable):
    """A bounded publish ran out of time after some of its records were written to a broker's socket
    (or acknowledged): a broker that stalled holding them appends them when it resumes. Kafka offers
    no way to take such bytes back (only transactions hide them from read_committed readers)."""


class PublishFailed(KafkaError):
    """The broker refused the record (too large, unknown topic, not authorised...)."""


class NotAuthorized(PublishFailed):
    """The broker's ACLs refuse this client's user the topic, group or cluster operation."""


class AuthenticationFailed(KafkaError):
    """The broker refused this client's credentials, or its TLS certificate failed the checks."""


_REFUSED = (TopicAuthorizationFailedError, GroupAuthorizationFailedError, ClusterAuthorizationFailedError)


def translate(error: BaseException, action: str) -> KafkaError:
    """The one place driver errors become ours (ours pass through unchanged)."""
    if isinstance(error, KafkaError):
        return error
    if isinstance(error, _REFUSED):
        return NotAuthorized(
            f"{action}: the broker's ACLs refuse this service's user ({type(error).__name__}: "
            f"{error.args[0] if error.args else ''}): a service writes only the topics the catalogue "
            "declares it a writer of"
        )
    if isinstance(error, SaslAuthenticationFailed):
        return AuthenticationFailed(f"{action}: the broker refused the credentials ({error})")
    if isinstance(error, KafkaConnectionError | KafkaTimeoutError | asyncio.TimeoutError):
        return BrokerUnavailable(f"{action}: Kafka did not answer ({error!r})")
    if isinstance(error, DriverError) and getattr(error, "retriable", False):
        return BrokerUnavailable(f"{action}: {error!r}")
    return PublishFailed(f"{action}: {error!r}")
