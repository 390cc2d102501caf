"""The app one API process serves: the REST API (``producers``) with the viewer pages mounted on it.

This is the composition of the web tier, above both packages it joins: ``producers`` knows nothing
of the pages, and the pages read the read models through ``projections``' queries and the API's
services. ``esports api`` serves it (:mod:`web.server`); tests and benchmarks build it directly.
"""

from __future__ import annotations

from fastapi import FastAPI

from infra.settings import Settings
from producers.app import create_api
from producers.services import Namespace, Services
from web import finding, pages


def create_app(
    settings: Settings, services: Services | None = None, *, namespace: Namespace | None = None
) -> FastAPI:
    """The API around ``services`` (or its own, opened by its lifespan) plus the pages (browse and
    search among them), sitemap, robots.txt and static files."""
    app = create_api(settings, services, namespace=namespace)
    pages.install(app)
    app.include_router(finding.router)
    return app
