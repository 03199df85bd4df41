"""What every command shares: the settings and broker of the chosen profile, colour, and
failing with an error's own message and exit code (as one JSON object with --format json)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

import click

from freshtoken._errors import FreshtokenError
from freshtoken.cli._formats import failure

if TYPE_CHECKING:
    from freshtoken.broker._broker import TokenBroker
    from freshtoken.config._settings import Settings


def fail_with(
    error: str, message: str, hint: str, exit_code: int, json_errors: bool = False
) -> NoReturn:
    """Say why the command failed on stderr (one line and a hint, or one JSON object)."""
    raise failure(error, message, hint, exit_code, json_errors)


def fail(error: FreshtokenError, json_errors: bool = False) -> NoReturn:
    text = str(error).split("\nhint: ", 1)[0]
    fail_with(error.error, text, error.hint, error.exit_code, json_errors)


def color_wanted(choice: str, stream: object = None) -> bool:
    """--color always|never|auto: auto means a terminal, NO_COLOR unset and TERM not dumb."""
    if choice in ("always", "never"):
        return choice == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream or sys.stdout, "isatty", None)
    return bool(isatty and isatty())


@dataclass
class Context:
    profile: str | None
    color: str = "auto"

    def settings(self, environ: Mapping[str, str] | None = None) -> Settings:
        from freshtoken.config._settings import Settings

        return Settings.load(profile=self.profile, environ=environ)

    def broker(self, settings: Settings | None = None) -> TokenBroker:
        """The profile's broker, with the command line's default margin (COMMAND_LINE; the
        `min_ttl` setting, applied by `from_settings`, wins)."""
        from freshtoken._token import COMMAND_LINE
        from freshtoken.broker._broker import TokenBroker

        return TokenBroker.from_settings(settings or self.settings(), refresh=COMMAND_LINE)

    @property
    def use_color(self) -> bool:
        return color_wanted(self.color)


def run(ctx: click.Context) -> Context:
    obj: Context = ctx.find_object(Context)  # type: ignore[assignment]
    return obj
