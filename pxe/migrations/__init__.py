"""Alembic migrations of the inventory (run by pxe.db.migrate on every server start)."""
