"""Confluent Schema Registry read endpoints for the project's own Avro schemas.

Records on the topics use Confluent's wire format with the ids of ``schemas/manifest.json``; serving
these endpoints lets ordinary Kafka and analytics tools (Confluent's deserializers, ksqlDB, Kafka
Connect, Spark's from_avro) decode them by pointing their registry URL at the API's base URL. Read-only:
the manifest in git is the registry; a deployment may point its tools at a real registry instead.
Errors follow the registry's own format (``error_code`` 40401/40402/40403), which those tools parse.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from producers.deps import ServicesDep

router = APIRouter(tags=["schema registry"])
MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"


def _answer(body: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, media_type=MEDIA_TYPE)


def _missing(error_code: int, message: str) -> JSONResponse:
    return _answer({"error_code": error_code, "message": message}, 404)


@router.get("/schemas/ids/{schema_id}")
async def schema_by_id(schema_id: int, services: ServicesDep) -> JSONResponse:
    """The Avro schema with this id, as a JSON string (registry format)."""
    try:
        schema = services.codec.schema_by_id(schema_id)
    except KeyError:
        return _missing(40403, f"Schema {schema_id} not found")
    return _answer({"schema": json.dumps(schema)})


@router.get("/subjects")
async def subjects(services: ServicesDep) -> JSONResponse:
    """Every subject (one per event type: RecordNameStrategy)."""
    return _answer(services.codec.subjects())


@router.get("/subjects/{subject}/versions")
async def versions(subject: str, services: ServicesDep) -> JSONResponse:
    """The versions of a subject, oldest first."""
    try:
        return _answer(services.codec.versions(subject))
    except KeyError:
        return _missing(40401, f"Subject '{subject}' not found.")


@router.get("/subjects/{subject}/versions/{version}")
async def subject_version(subject: str, version: str, services: ServicesDep) -> JSONResponse:
    """One version of a subject (``latest`` allowed): subject, id, version and schema."""
    codec = services.codec
    try:
        known = codec.versions(subject)
    except KeyError:
        return _missing(40401, f"Subject '{subject}' not found.")
    number = known[-1] if version == "latest" else int(version) if version.isdigit() else None
    if number not in known:
        return _missing(40402, f"Version {version} not found.")
    schema_id = codec.schema_id(subject, number)
    schema = json.dumps(codec.schema_by_id(schema_id))
    return _answer({"subject": subject, "id": schema_id, "version": number, "schema": schema})
