"""The web app: server-rendered pages (Jinja2), a little plain JavaScript, SVG posters.

``mount_web(app)`` (in :mod:`primetime.web.routes`) adds the pages and ``/static``
to the service app; ``create_app`` calls it, so ``primetime serve`` serves both the
JSON API and the site.
"""
