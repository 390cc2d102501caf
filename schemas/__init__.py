"""The Avro contract of every event: one ``.avsc`` per event type and ``manifest.json``.

Layout: ``<family>/<EventType>.avsc`` holds the newest version of a type, earlier versions stay
in ``<family>/history/<EventType>.vN.avsc``. ``manifest.json`` fixes a permanent integer id for
every (subject, version); the subject is the record's full name,
``io.esports.events.<family>.<EventType>`` (Confluent's RecordNameStrategy, since topics carry
several event types). Ids are never reused: ``next_id`` only grows.

To evolve a type: copy its ``.avsc`` to ``history/<EventType>.v<N>.avsc`` (and point that
version's manifest entry there), add the new field *with a default* to the ``.avsc`` and the
dataclass, add a manifest entry ``{"id": next_id, "version": N+1, ...}``, bump ``next_id``, and
run ``python tests/fixtures/avro/generate.py`` to freeze a fixture of the new version. To rename a
field, give the new name the old one in its ``"aliases"`` (and a default): readers resolve records
written before by it, as ``causation_id`` does for ``cause_event_id``.

An enum may gain symbols at the end (never reorder or drop one; its ``default`` stays): that
changes the schema text, so every type embedding the enum gets a new version the same way.

To retire a type: delete its ``.avsc`` files and fixtures, and keep its manifest entries with
``"retired": true`` in place of ``"path"``; their ids stay taken, and ``load_entries`` skips them.

A new event type: draft its file with ``json.dumps(events.avro_mapping.render_schema(Cls), indent=2)``,
give it the id ``next_id`` at version 1, and add the class to ``events.topics.CATALOGUE``.
``EventCodec.load(SCHEMAS_DIR)`` refuses to start while a dataclass and its newest schema disagree.
"""

from pathlib import Path

__all__ = ["MANIFEST_PATH", "SCHEMAS_DIR"]

SCHEMAS_DIR: Path = Path(__file__).resolve().parent
MANIFEST_PATH: Path = SCHEMAS_DIR / "manifest.json"
