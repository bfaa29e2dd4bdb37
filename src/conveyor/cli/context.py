"""What every command shares: the app (from --app / CONVEYOR_APP) and its store."""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import click

from ..app import Conveyor
from ..errors import ConfigurationError, ConveyorError
from ..settings import load_settings


def load_app(spec: str) -> Conveyor:
    """``package.module:attribute`` -> the Conveyor object it names."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError(f"--app {spec!r}: expected module:attribute, e.g. shop.jobs:app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"--app {spec!r}: cannot import {module_name!r}: {exc}") from exc
    try:
        app = getattr(module, attribute)
    except AttributeError:
        raise ConfigurationError(
            f"--app {spec!r}: module {module_name!r} has no attribute {attribute!r}") from None
    if callable(app) and not isinstance(app, Conveyor):
        app = app()
    if not isinstance(app, Conveyor):
        raise ConfigurationError(f"--app {spec!r} is a {type(app).__name__}, not a Conveyor")
    return app


@dataclass
class CliContext:
    app_spec: str | None
    connection: str | None
    _app: Conveyor | None = field(default=None, repr=False)

    @property
    def app(self) -> Conveyor:
        if self._app is None:
            spec = self.app_spec or load_settings().app
            if spec:
                app = load_app(spec)
                if self.connection:
                    app.use_store(self.connection)
            else:
                app = Conveyor(self.connection)
            self._app = app
        return self._app

    def require_app_spec(self) -> None:
        if not (self.app_spec or load_settings().app):
            raise ConfigurationError(
                "no app: pass --app module:attribute (or set CONVEYOR_APP) so the worker knows "
                "your jobs")


pass_ctx = click.make_pass_decorator(CliContext)


def fail(message: str, code: int = 2) -> Any:
    click.echo(f"conveyor: {message}", err=True)
    raise SystemExit(code)


def handle_errors(exc: ConveyorError) -> None:
    fail(str(exc), 1 if not isinstance(exc, ConfigurationError) else 2)
