"""Assertions from the platform: a JWT got fresh for every token request, never cached, from a
file (a Kubernetes projected service-account token, a SPIFFE JWT-SVID: their owner rewrites
them) or from GitHub Actions' OIDC token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN,
there when the job has `permissions: id-token: write`).

A grant or a client authentication names what it needs in `sources` (form field -> source);
`fill` fetches them into the form inside the token request's exchange, so the request's
deadline and retries cover the fetch too. Each value is scrubbed from logs and, on GitHub
Actions, masked in the job's log.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import httpx

from freshtoken._errors import (
    AuthorizationError,
    ConfigurationError,
    MalformedResponseError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from freshtoken._http import Exchange, rate_limit_wait
from freshtoken._log import remember_secret
from freshtoken._platform import open_no_wait, shared_bits
from freshtoken._secret import Secret
from freshtoken.oauth._jwt_auth import ASSERTION_TYPE
from freshtoken.provider._endpoints import check_url

if TYPE_CHECKING:
    from freshtoken.provider._endpoints import Endpoints

GITHUB_URL, GITHUB_TOKEN = "ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
_PERMISSION = (
    "The workflow (or the job) needs `permissions: id-token: write`; GitHub then gives "
    "the step ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN."
)


class AssertionSource(Protocol):
    def fetch(self) -> Exchange[str]:
        """A fresh assertion (a compact JWT)."""
        ...

    def describe(self) -> str:
        """Where it comes from, as configured (never the assertion)."""
        ...


def _keep(value: str, where: str) -> str:
    if value.count(".") != 2 or any(c.isspace() for c in value):
        raise MalformedResponseError(f"{where} is not a compact JWT (three dot-separated parts)")
    remember_secret(value)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        sys.stderr.write(f"::add-mask::{value}\n")  # as actions/core's getIDToken does
        sys.stderr.flush()
    return value


@dataclass(frozen=True, slots=True)
class FileAssertion:
    """`file:PATH`: read at every request (its owner may have rotated it)."""

    path: Path

    def fetch(self) -> Exchange[str]:
        return _keep(_read(self.path), f"the assertion file {self.path}")
        yield  # a generator that makes no request

    def describe(self) -> str:
        return f"file:{self.path}"


#: An assertion file larger than this is not a token (JWT-SVIDs and projected tokens are ~1 KiB).
_MAX_FILE = 64 * 1024


def _read(path: Path) -> str:
    """The assertion in `path`: a regular file (a FIFO planted there fails at once instead of
    hanging the mint), at most _MAX_FILE bytes, and not writable by every user (anyone could
    have put another identity's token there). Symbolic links are followed: Kubernetes
    projects its tokens through them."""
    try:
        with open(open_no_wait(path, os.O_RDONLY), "rb") as handle:
            info = os.fstat(handle.fileno())  # the file read is the file checked
            if not stat.S_ISREG(info.st_mode):
                why = "is not a regular file"
            elif shared_bits(info.st_mode) & stat.S_IWOTH:
                why = f"is writable by every user (mode {stat.S_IMODE(info.st_mode):o})"
            elif len(data := handle.read(_MAX_FILE + 1)) > _MAX_FILE:
                why = f"is larger than {_MAX_FILE // 1024} KiB: not a token"
            else:
                return data.decode("utf-8", "replace").strip()
    except OSError as exc:
        why = f"cannot be read ({exc.strerror})"
    raise ConfigurationError(
        f"the assertion file {path} {why}",
        hint="Check the path (a Kubernetes projected token is where the pod spec mounts it), "
        "that this user may read it, and that only its owner may write it.",
    )


@dataclass(frozen=True, slots=True, repr=False)
class GitHubActionsAssertion:
    """`github-actions:AUDIENCE`: an OIDC token of this job from GitHub, for `audience` (empty:
    GitHub's default, the repository owner's URL)."""

    audience: str
    request_url: str
    request_token: Secret

    def fetch(self) -> Exchange[str]:
        url = httpx.URL(self.request_url)
        if self.audience:
            url = url.copy_add_param("audience", self.audience)
        headers = {
            "Authorization": f"Bearer {self.request_token.reveal()}",
            "Accept": "application/json",
        }
        where = f"GitHub's OIDC token endpoint ({url.host})"
        try:
            reply = yield httpx.Request("GET", url, headers=headers)
        except httpx.HTTPError as exc:
            raise TransportError(f"{where} did not answer ({type(exc).__name__})") from None
        assert reply is not None
        if reply.status >= 500:
            raise ServerError(f"{where} failed with HTTP {reply.status}", status=reply.status)
        if (wait := rate_limit_wait(reply, time.time())) is not None:
            raise RateLimitedError(
                f"{where} is rate-limiting this job (HTTP {reply.status})",
                status=reply.status,
                retry_after=wait,
                hint="Retried within the retry budget. Share one token between the job's steps "
                "(a shared store, or `freshtoken serve`) so that fewer mints ask GitHub.",
            )
        if reply.status != 200:
            raise AuthorizationError(
                f"{where} refused the OIDC token request",
                error="id_token_refused",
                status=reply.status,
                hint=_PERMISSION + " The request token lasts as long as the job: a step "
                "after the job cannot use it.",
            )
        data = reply.data or {}
        value = data.get("value")
        if not isinstance(value, str):
            raise MalformedResponseError(f"{where} answered without a token (`value`)")
        return _keep(value, where + "'s answer")

    def describe(self) -> str:
        return f"github-actions:{self.audience}"

    def __repr__(self) -> str:
        return f"GitHubActionsAssertion(audience={self.audience!r})"


def assertion_source(spec: str, setting: str, environ: Mapping[str, str]) -> AssertionSource:
    """The source `spec` names: `file:PATH` or `github-actions:AUDIENCE`."""
    kind, _, rest = spec.partition(":")
    if kind == "file" and rest:
        return FileAssertion(Path(rest).expanduser())
    if kind == "github-actions":
        url, token = environ.get(GITHUB_URL, ""), environ.get(GITHUB_TOKEN, "")
        if not (url and token):
            raise ConfigurationError(
                f"{setting} is {spec}, and this step has no GitHub OIDC token endpoint",
                hint=_PERMISSION + " Outside GitHub Actions use file:PATH.",
            )
        remember_secret(token)
        return GitHubActionsAssertion(rest, check_url(url, GITHUB_URL), Secret(token))
    raise ConfigurationError(
        f"{setting} must be file:PATH or github-actions:AUDIENCE, not {spec!r}",
        hint="file:/var/run/secrets/tokens/oidc-token, or github-actions:api://AzureADTokenExchange",
    )


def credential_variables(specs: Iterable[str | None]) -> frozenset[str]:
    """The variables of the platform credential that the sources `specs` use: for a
    `github-actions:` source, GitHub's OIDC request URL and token (whoever holds the token gets
    the job's OIDC tokens for any audience). `exec` keeps them from its children."""
    if any((spec or "").partition(":")[0] == "github-actions" for spec in specs):
        return frozenset((GITHUB_URL, GITHUB_TOKEN))
    return frozenset()


def fill(form: dict[str, str], *parts: object) -> Exchange[None]:
    """Fetch into `form` the assertions that `parts` (a grant, a client authentication) name in
    their `sources`."""
    for part in parts:
        sources: Mapping[str, AssertionSource] = getattr(part, "sources", {})
        for name, source in sources.items():
            form[name] = yield from source.fetch()


@dataclass(frozen=True, slots=True)
class PlatformAssertion:
    """Client authentication with an assertion the platform issued (RFC 7521 §4.2, RFC 7523
    §2.2), as Entra ID's federated credentials take a GitHub Actions token: `client_id`, and
    the assertion as `client_assertion`."""

    client_id: str
    source: AssertionSource

    @property
    def sources(self) -> dict[str, AssertionSource]:
        return {"client_assertion": self.source}

    def apply(
        self, headers: dict[str, str], form: dict[str, str], endpoints: Endpoints | None = None
    ) -> None:
        form["client_id"] = self.client_id
        form["client_assertion_type"] = ASSERTION_TYPE

    def fingerprint(self, pepper: bytes) -> str:
        return hmac.new(pepper, self.source.describe().encode(), hashlib.sha256).hexdigest()

    def describe(self) -> str:
        return f"client assertion from {self.source.describe()}"
