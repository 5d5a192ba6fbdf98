"""Alembic migrations of the store, run automatically by ``querywarden.store.open_store``."""
