"""What every command shares: the settings and broker of the chosen profile, and failing
with an error's own message and exit code."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

import click

from freshtoken._errors import OAuthError

if TYPE_CHECKING:
    from freshtoken.broker._broker import TokenBroker
    from freshtoken.config._settings import Settings


def fail(error: OAuthError) -> NoReturn:
    click.echo(f"freshtoken: {error}", err=True)
    sys.exit(error.exit_code)


@dataclass
class Context:
    profile: str | None

    def settings(self, environ: Mapping[str, str] | None = None) -> Settings:
        from freshtoken.config._settings import Settings

        return Settings.load(profile=self.profile, environ=environ)

    def broker(self, settings: Settings | None = None) -> TokenBroker:
        from freshtoken.broker._broker import TokenBroker

        return TokenBroker.from_settings(settings or self.settings())


def setup_logging(verbose: int, quiet: bool) -> None:
    from freshtoken._log import logger

    level = (
        logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("freshtoken: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def run(ctx: click.Context) -> Context:
    obj: Context = ctx.find_object(Context)  # type: ignore[assignment]
    return obj
