"""The production store: PostgreSQL through psycopg 3 and its connection pool."""

from .backend import PostgresBackend

__all__ = ["PostgresBackend"]
