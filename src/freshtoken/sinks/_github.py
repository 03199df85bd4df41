"""`github-secret://...`: the refresh token in a GitHub Actions secret, written through the REST
API, sealed with the secret store's public key (libsodium sealed box, PyNaCl).

    github-secret://OWNER/REPO/NAME                      a repository secret
    github-secret://OWNER/REPO/environments/ENV/NAME     an environment secret
    github-secret://orgs/ORG/NAME[?visibility=all]       an organisation secret
"""

from __future__ import annotations

import base64
import random
import re
import threading
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, quote

import httpx

from freshtoken._errors import ConfigurationError, SinkError
from freshtoken._http import (
    DeadlineExceeded,
    Exchange,
    Reply,
    Sleep,
    json_object,
    new_client,
    rate_limit_wait,
    run_sync,
    stamped,
)
from freshtoken._log import logger, redact, remember_secret
from freshtoken.provider._endpoints import check_url
from freshtoken.sinks._base import RefreshTokenSink, SinkOptions

_SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ACCOUNT = re.compile(r"[A-Za-z0-9._-]+")
_VISIBILITIES = ("private", "all", "selected")
_MAX_ATTEMPTS = 6
_WRITE_ACCESS = (
    "A workflow's own GITHUB_TOKEN can never write secrets (it has no secrets permission): "
    "use a fine-grained personal access token with 'Secrets: Read and write' on the repository "
    "(organisation secrets: 'Secrets' on the organisation; environments: 'Environments' too), "
    "or a GitHub App installation token with that permission, in FRESHTOKEN_GITHUB_TOKEN."
)


def _parse(url: str) -> tuple[str, str, str | None]:
    """(secrets path, secret name, visibility or None) of a github-secret URL."""
    rest, _, query = url.removeprefix("github-secret://").partition("?")
    parts = rest.strip("/").split("/")
    visibility = parse_qs(query).get("visibility", [None])[-1]
    org = len(parts) == 3 and parts[0] == "orgs"
    if org:
        base = f"orgs/{parts[1]}/actions/secrets"
    elif len(parts) == 3:
        base = f"repos/{parts[0]}/{parts[1]}/actions/secrets"
    elif len(parts) == 5 and parts[2] == "environments" and parts[3]:
        base = f"repos/{parts[0]}/{parts[1]}/environments/{quote(parts[3], safe='')}/secrets"
    else:
        parts = []
    accounts = parts[1:2] if org else parts[:2]
    if (
        not parts
        or not all(_ACCOUNT.fullmatch(p) for p in accounts)
        or not _SECRET_NAME.fullmatch(parts[-1])
        or parts[-1].upper().startswith("GITHUB_")
        or (visibility is not None and (not org or visibility not in _VISIBILITIES))
    ):
        raise ConfigurationError(
            f"FRESHTOKEN_REFRESH_TOKEN_SINK is not a GitHub secret this can write: {url!r}",
            hint="Use github-secret://OWNER/REPO/NAME, github-secret://OWNER/REPO/environments/"
            "ENV/NAME or github-secret://orgs/ORG/NAME (?visibility=private|all|selected); a "
            "secret's name is letters, digits and _, not starting with a digit or GITHUB_.",
        )
    return base, parts[-1], visibility


def open_url(url: str, options: SinkOptions) -> RefreshTokenSink:
    base, name, visibility = _parse(url)
    if options.github_token is None or not options.github_token.reveal():
        raise ConfigurationError(
            "the refresh-token sink is a GitHub secret, and FRESHTOKEN_GITHUB_TOKEN is not set",
            hint=_WRITE_ACCESS,
        )
    check_url(options.github_api_url, "GITHUB_API_URL")
    remember_secret(options.github_token.reveal())
    return GitHubSecretSink(url.partition("?")[0], base, name, visibility, options)


class GitHubSecretSink:
    """Every request carries the deadline it was given, is retried on a 5xx or a network
    failure while time is left (a PUT of the same value is idempotent), and after the wait a
    rate limit asks for when it ends before the deadline; its refusal is named: 401 the token,
    403 its permissions, 404 the repository, environment or org."""

    def __init__(
        self, url: str, base: str, secret: str, visibility: str | None, options: SinkOptions
    ) -> None:
        self.url = url
        self.base = base
        self.secret = secret
        self.org = base.startswith("orgs/")
        self.visibility = visibility
        self.api = options.github_api_url.rstrip("/")
        self.clock = options.clock
        self.timeouts = options.timeouts
        self._token = options.github_token
        self._key: tuple[str, bytes] | None = None  # key_id, public key
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None
        self._rng = random.Random()

    @property
    def name(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"GitHubSecretSink({self.url!r})"

    # -- HTTP ---------------------------------------------------------------------------------
    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None or self._http.is_closed:  # closed by a deadline's watchdog
                self._http = new_client(self.timeouts)
            return self._http

    def _exchange(
        self, method: str, path: str, body: dict[str, Any] | None, deadline: float
    ) -> Exchange[Reply]:
        assert self._token is not None
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self._token.reveal()}",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "freshtoken",
        }
        attempt = 0
        while True:
            attempt += 1
            request = httpx.Request(method, f"{self.api}/{path}", headers=headers, json=body)
            try:
                reply = yield request
            except DeadlineExceeded:
                raise self._failed(f"no answer to {method} in time", attempt) from None
            except httpx.HTTPError as exc:
                failure = redact(str(exc))[:160] or type(exc).__name__
            else:
                assert reply is not None
                wait = rate_limit_wait(reply, self.clock.time())
                if wait is not None:
                    if attempt >= _MAX_ATTEMPTS or self.clock.monotonic() + wait > deadline:
                        raise self._rate_limited(reply, wait)
                    logger.warning("GitHub is rate-limiting %s; retrying in %.1fs", path, wait)
                    yield Sleep(wait)
                    continue
                if reply.status < 500:
                    return reply
                failure = f"HTTP {reply.status}"
            if attempt >= _MAX_ATTEMPTS:
                raise self._failed(failure, attempt)
            yield Sleep(self._rng.uniform(0.0, min(4.0, 0.25 * 2 ** (attempt - 1))))

    def _failed(self, failure: str, attempts: int) -> SinkError:
        return SinkError(
            f"could not reach GitHub to write {self.url}: {failure} (after {attempts} attempt(s))",
            hint="GitHub's API is down or unreachable from here (check GITHUB_API_URL, "
            "HTTPS_PROXY); the new refresh token is kept in the store and written by the next "
            "call.",
        )

    def _rate_limited(self, reply: Reply, wait: float) -> SinkError:
        return SinkError(
            f"GitHub is rate-limiting FRESHTOKEN_GITHUB_TOKEN ({self.url}, HTTP {reply.status}); "
            f"it asked to wait {wait:.0f}s, past this call's deadline",
            status=reply.status,
            retry_after=wait,
            hint="The token's API rate limit is used up (every job using the same token shares "
            "it), or GitHub's secondary limit was hit; the new refresh token is kept in the "
            "store and written by the next call. Use a token of its own for freshtoken.",
        )

    def _call(
        self, method: str, path: str, deadline: float, body: dict[str, Any] | None = None
    ) -> Reply:
        exchange = stamped(self._exchange(method, path, body, deadline), deadline)
        return run_sync(exchange, self._client(), self.clock)

    def _refused(self, reply: Reply, doing: str) -> SinkError:
        data = json_object(reply.body) or {}
        said = redact(str(data.get("message", "")))[:200]
        where = self.base.removesuffix("/secrets").removesuffix("/actions")
        if reply.status == 401:
            why, hint = "refused FRESHTOKEN_GITHUB_TOKEN", "It is wrong, expired or revoked. "
        elif reply.status == 403:
            why, hint = f"does not let FRESHTOKEN_GITHUB_TOKEN {doing}", ""
        elif reply.status == 404:
            why, hint = (
                f"found no {where} that FRESHTOKEN_GITHUB_TOKEN can see",
                "Check OWNER/REPO (and ENV) in FRESHTOKEN_REFRESH_TOKEN_SINK; GitHub also "
                "answers 404 to a token that may not see the repository. ",
            )
        else:
            why, hint = f"answered HTTP {reply.status} to {doing}", ""
        return SinkError(
            f"GitHub {why} ({self.url}, HTTP {reply.status}{': ' + said if said else ''})",
            status=reply.status,
            retryable=False,
            hint=hint + _WRITE_ACCESS,
        )

    # -- the sink -----------------------------------------------------------------------------
    def _public_key(self, deadline: float) -> tuple[str, bytes]:
        reply = self._call("GET", f"{self.base}/public-key", deadline)
        data = json_object(reply.body) or {}
        if reply.status != 200:
            raise self._refused(reply, "read the secrets' public key")
        try:
            key = (str(data["key_id"]), base64.b64decode(str(data["key"]), validate=True))
        except (KeyError, ValueError):
            key = ("", b"")
        if not key[0] or len(key[1]) != 32:
            raise SinkError(
                f"GitHub answered {self.base}/public-key without a usable key",
                hint="Check GITHUB_API_URL: it must be the REST API (https://api.github.com, or "
                "https://HOST/api/v3 for GitHub Enterprise Server).",
            )
        self._key = key
        return key

    def prepare(self, deadline: float) -> None:
        self._public_key(deadline)
        if self.org and self.visibility is None:
            reply = self._call("GET", f"{self.base}/{self.secret}", deadline)
            data = json_object(reply.body) or {}
            if reply.status not in (200, 404):
                raise self._refused(reply, "read the secret")
            found = data.get("visibility") if reply.status == 200 else None
            self.visibility = found if found in _VISIBILITIES else "private"

    def write(self, token: str, deadline: float) -> None:
        from nacl.public import PublicKey, SealedBox

        if self._key is None or (self.org and self.visibility is None):
            self.prepare(deadline)
        for fresh in (False, True):
            key_id, key = self._public_key(deadline) if fresh else (self._key or ("", b""))
            sealed = SealedBox(PublicKey(key)).encrypt(token.encode())
            body: dict[str, Any] = {
                "encrypted_value": base64.b64encode(sealed).decode(),
                "key_id": key_id,
            }
            if self.org:
                body["visibility"] = self.visibility
            reply = self._call("PUT", f"{self.base}/{self.secret}", deadline, body)
            if reply.status in (201, 204):
                return
            if reply.status != 422 or fresh:
                raise self._refused(reply, "write the secret")
            # 422: most likely the key was rotated since it was read; read it again once.

    def read(self) -> str | None:
        return None  # GitHub never gives a secret's value back

    def last_written(self, deadline: float) -> float | None:
        reply = self._call("GET", f"{self.base}/{self.secret}", deadline)
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise self._refused(reply, "read the secret")
        stamp = (json_object(reply.body) or {}).get("updated_at")
        try:
            return datetime.fromisoformat(str(stamp)).timestamp()
        except ValueError:
            return None
