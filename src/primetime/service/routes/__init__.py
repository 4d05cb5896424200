"""HTTP routes of the JSON API, one module per area, all under ``/api/v1`` except ops.

Handlers parse the request, call the service's actions (:mod:`primetime.service.actions`)
and shape the response; :mod:`.errors` answers every refusal (schema validation and the
actions' domain errors) as JSON in one place. ``deps`` holds the dependencies the routes
(and the web pages) share: the service state and the signed-in user.
"""
