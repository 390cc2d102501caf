"""The viewer web UI: server-rendered pages (Jinja2) and small ES modules, mounted on the API's app.

:func:`web.pages.install` adds the page routes (``/``, ``/live/{id}``, ``/tournaments/{id}``...),
``/sitemap.xml``, ``/robots.txt`` and the static files (``/static``, hls.js from ``node_modules``).
"""
