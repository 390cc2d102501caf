"""The web tier: the viewer pages (Jinja2, small ES modules) mounted on the API, and the process serving both.

:func:`web.pages.install` adds the page routes (``/``, ``/live/{id}``, ``/tournaments/{id}``...),
``/sitemap.xml``, ``/robots.txt`` and the static files (``/static``, hls.js from ``node_modules``);
:func:`web.app.create_app` joins them with the REST API, and :mod:`web.server` serves that app.
"""
