"""Alembic environment of the service database (run through `primetime.service.db.migrate`)."""
