"""The web app: server-rendered pages (Jinja2), a little plain JavaScript, SVG posters.

It owns everything a browser sees: the page routes (:mod:`primetime.web.routes`), their
rendering and error pages (:mod:`primetime.web.render`), sessions and the admin gate
as pages see them (:mod:`primetime.web.session`), view models (:mod:`primetime.web.views`),
charts and posters. It depends on the service (its state and actions), never the other
way round: ``create_app`` (:mod:`primetime.service.app`) includes :data:`routes.router`
and serves :data:`STATIC_DIR` at ``/static``, so ``primetime serve`` serves both the JSON
API and the site.
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"
