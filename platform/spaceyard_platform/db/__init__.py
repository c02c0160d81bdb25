"""Persistence: SQLAlchemy models, sessions, and Alembic migrations (SQLite by default, PostgreSQL in production)."""
