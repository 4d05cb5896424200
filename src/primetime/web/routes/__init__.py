"""The web app's routes, one module per job; :data:`router` holds them all.

Pages (all but sign-in/up need a session; without one they redirect to
``/signin?next=…``):

======================================  ===============================================
``GET|POST /signin``, ``/signup``       forms; success sets the session cookie
``POST /signout``                       clears it
``GET|POST /onboarding``                pick genres and titles (titles count as likes)
                                        (:mod:`.account`)
``GET  /``                              home: hero, then the user's rows
``GET  /rows``                          home rows fragment (refresh after back-navigation)
``GET  /title/{item_id}``               details, seasons, similar titles, actions
``POST /title/{item_id}/events``        an action (play, complete, like, dislike, rate,
                                        add to / remove from list); with ``X-Fragment``
                                        it answers the refreshed actions and rows
``GET  /search``, ``/search/results``   search page; results fragment (instant search)
``GET  /insights``                      the signed-in user's charts
``GET  /users/{user_id}/insights``      403 unless it is the signed-in user
                                        (:mod:`.pages`)
``GET  /admin`` (+ POSTs)               models, promote/reload, experiments, live stats;
                                        admin account, admin cookie or X-Admin-Token
                                        (:mod:`.admin`)
``GET  /posters/{item_id}``             TMDb image (cached) or generated SVG
                                        (:mod:`.posters`)
``/static/…``                           CSS, JS, icon (mounted by ``create_app``)
======================================  ===============================================

A request with the header ``X-Fragment: 1`` (sent by ``static/app.js``) gets the
piece of HTML it will swap in instead of a whole page or a redirect; without
JavaScript every form still works by posting and following the redirect.

The handlers call the service's actions (:mod:`primetime.service.actions`), never the
API's route handlers; an action's domain error becomes the HTML error page or a form
message (:mod:`primetime.web.render`).
"""

from __future__ import annotations

from fastapi import APIRouter

from primetime.web.routes import account, admin, pages, posters

router = APIRouter(include_in_schema=False)
for _module in (account, pages, admin, posters):
    router.include_router(_module.router)

__all__ = ["router"]
