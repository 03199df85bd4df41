"""The `RefreshTokenSink` contract: where a rotated refresh token is written back, so that the
next run (a fresh runner, a fresh store) starts from the live one."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from freshtoken._clock import SYSTEM_CLOCK, Clock
from freshtoken._errors import FreshtokenError
from freshtoken._http import Timeouts
from freshtoken._log import logger
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


#: How far (s) the sink's clock may be ahead of this runner's: a write this close to the job's
#: start counts as before it.
CLOCK_SLACK = 30.0


def predates_sink(
    sink: RefreshTokenSink | None, environ: Mapping[str, str], deadline: float
) -> bool:
    """Whether a refresh token read from the environment at this GitHub Actions job's start
    is older than `sink`'s last write (GitHub's `updated_at`): the runner writes the file
    `$GITHUB_EVENT_PATH` as it sets the job up, when the job's secrets are read. False when
    either cannot be told."""
    event = environ.get("GITHUB_EVENT_PATH")
    if sink is None or not event:
        return False
    try:
        started = os.stat(event).st_mtime
        written = sink.last_written(deadline)
    except (OSError, FreshtokenError):
        return False
    if written is None or written <= started + CLOCK_SLACK:
        return False
    logger.warning(
        "the configured refresh token was read when this job started, and %s was written "
        "%.0fs after that (another run rotated it): it is not presented, being spent",
        sink.name,
        written - started,
    )
    return True


def configured_seed(
    sink: RefreshTokenSink | None, setting: Secret | None
) -> tuple[str, Callable[[float], bool] | None] | None:
    """The refresh token to offer: the sink's (where it can be read back), else the setting's,
    with what tells (by a deadline) whether it is older than the sink's last write."""
    if sink is not None and (read := sink.read()):
        return read, None
    if not setting:
        return None
    return setting.reveal(), partial(predates_sink, sink, os.environ)
