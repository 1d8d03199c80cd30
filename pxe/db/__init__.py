"""The inventory database: models, engine and sessions, migrations on open."""
