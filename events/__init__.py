"""The event model: pure domain events, their Avro contract and the topic catalogue.

Nothing in this package talks to Kafka, PostgreSQL, Redis or websockets (a unit test walks
the imports); it is safe to import from every service and from the tests.
"""

from events.base import Event, utc_now

__all__ = ["Event", "utc_now"]
