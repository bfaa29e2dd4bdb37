"""The MySQL / MariaDB store (PyMySQL, the ``mysql`` extra)."""

from .backend import MySQLBackend

__all__ = ["MySQLBackend"]
