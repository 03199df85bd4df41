"""The `RefreshTokenSink` contract: where a rotated refresh token is written back, so that the
next run (a fresh runner, a fresh store) starts from the live one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from freshtoken._clock import SYSTEM_CLOCK, Clock
from freshtoken._http import Timeouts
from freshtoken._secret import Secret

GITHUB_API = "https://api.github.com"


@dataclass(frozen=True, slots=True)
class SinkOptions:
    """What a sink may need besides its URL: the GitHub token and API base (`GITHUB_API_URL`),
    the timeouts of every request, the clock deadlines are read on, and the environment a
    command sink's program gets (freshtoken's secret variables removed)."""

    github_token: Secret | None = None
    github_api_url: str = GITHUB_API
    timeouts: Timeouts = field(default_factory=Timeouts)
    clock: Clock = SYSTEM_CLOCK
    environ: Mapping[str, str] | None = None


class RefreshTokenSink(Protocol):
    """Deadlines are monotonic instants (`SinkOptions.clock`); a failure is a `SinkError` (or a
    `ConfigurationError` for a sink that can never work as configured)."""

    @property
    def name(self) -> str:
        """How messages name it (its URL, no secret)."""
        ...

    def prepare(self, deadline: float) -> None:
        """Check, before a refresh token is spent, that a write can succeed as far as can be
        told without writing (GitHub: the token may read the secret's public key)."""
        ...

    def write(self, token: str, deadline: float) -> None:
        """Replace the stored refresh token with `token`, durably, by `deadline`."""
        ...

    def read(self) -> str | None:
        """The refresh token it holds, where it can be read back (a file); else None."""
        ...

    def last_written(self, deadline: float) -> float | None:
        """When it was last written (wall time), None when it cannot tell or never was."""
        ...
