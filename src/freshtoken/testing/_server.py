"""A real OAuth 2.0 authorization server on loopback, for tests, demos and benchmarks.

It behaves like the servers freshtoken meets in the wild: Genesys Cloud's error shapes and
rate-limit answer, Keycloak's and node-oidc-provider's refresh-token rotation with reuse
detection, and the faults and malformed answers that real networks produce.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, fields, replace
from typing import Any

from freshtoken._serving import serve_in_thread, stop_serving
from freshtoken.provider._presets import GENESYS
from freshtoken.testing._authorize import issue_code
from freshtoken.testing._endpoints import Authority
from freshtoken.testing._federation import Federation
from freshtoken.testing._handler import LoopbackHTTPServer
from freshtoken.testing._model import (
    ALL_GRANTS,
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    MALFORMED,
    Answer,
    Client,
    Knobs,
)
from freshtoken.testing._tls import MTLS_ALIAS, TLS_METHODS, ServerTls

#: The endpoints with an RFC 8705 §5 alias under MTLS_ALIAS: metadata name, path.
_ALIASED = (("token", "token"), ("introspection", "introspect"), ("revocation", "revoke"))

_RFC8414 = "/.well-known/oauth-authorization-server"
_OIDC = "/.well-known/openid-configuration"


class AuthServer(Authority):
    """Start with `with AuthServer() as server:`; `server.token_url` is then live.

    Clients default to the demo client (`demo-client` / `demo-secret`). With `tls=True` it
    serves HTTPS and asks clients for a certificate (mutual TLS, RFC 8705): trust `ca_pem`
    (SSL_CERT_FILE), get tls_client_auth certificates from `issue_certificate`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clients: list[Client] | None = None,
        tls: bool = False,
        **knobs: Any,
    ) -> None:
        super().__init__(Knobs(**knobs), clients or [Client(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)])
        self.tls = ServerTls() if tls else None
        for client in self._clients.values():
            self._trust(client)
        self._host = host
        self._port = port
        self._httpd: LoopbackHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def genesys(cls, **overrides: Any) -> AuthServer:
        """A server that answers as Genesys Cloud does (errors, no scope, 400 rate limit)."""
        return cls(**{**GENESYS.stand_in, **overrides})

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> AuthServer:
        context = self.tls.context if self.tls else None
        self._httpd = LoopbackHTTPServer((self._host, self._port), self, context)
        self._thread = serve_in_thread(self._httpd, "freshtoken-testserver")
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        stop_serving(httpd, self._thread, httpd.close_all if httpd else None)
        self._thread = None

    def __enter__(self) -> AuthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "the server is not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self._host if ":" not in self._host else f"[{self._host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def token_url(self) -> str:
        return self.issuer + "/oauth/token"

    @property
    def issuer(self) -> str:
        return self.url + self.knobs.mount

    def metadata_at(self, path: str) -> dict[str, Any] | None:
        """The metadata document served at `path`, or None (knobs `mount`, `metadata_omit`)."""
        mount = self.knobs.mount
        if self.knobs.metadata_only_openid:
            return self.metadata() if path == mount + _OIDC else None
        if path in (_RFC8414 + mount, mount + _RFC8414) or (not mount and path == _OIDC):
            return self.metadata()
        if mount and path == mount + _OIDC:
            # As django-oauth-toolkit's: it names no revocation endpoint (`metadata_omit`
            # applies to the RFC 8414 documents only).
            return {k: v for k, v in self._metadata().items() if k != "revocation_endpoint"}
        return None

    def metadata(self) -> dict[str, Any]:
        """The RFC 8414 metadata (less the fields of the `metadata_omit` knob); an OpenID
        provider's (`offline_access_needs_consent`) says so."""
        omit = {name.strip() for name in self.knobs.metadata_omit.split(",")}
        found = {k: v for k, v in self._metadata().items() if k not in omit}
        if self.knobs.offline_access_needs_consent:
            found["scopes_supported"] = ["openid", "offline_access"]
            found["id_token_signing_alg_values_supported"] = ["none"]
        return found

    def _metadata(self) -> dict[str, Any]:
        base = self.issuer
        return {
            "issuer": base,
            "token_endpoint": base + "/oauth/token",
            "authorization_endpoint": base + "/oauth/authorize",
            "device_authorization_endpoint": base + "/oauth/device_authorization",
            "code_challenge_methods_supported": ["S256"]
            + ([] if self.knobs.refuse_plain_pkce else ["plain"]),
            "revocation_endpoint": base + "/oauth/revoke",
            "introspection_endpoint": base + "/oauth/introspect",
            "grant_types_supported": [g.strip() for g in self.knobs.metadata_grants.split(",")]
            if self.knobs.metadata_grants
            else sorted(ALL_GRANTS),
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
                "private_key_jwt",
                "client_secret_jwt",
                *(TLS_METHODS if self.tls else ()),
            ],
            **(
                {
                    "tls_client_certificate_bound_access_tokens": self.knobs.bind_tokens,
                    "mtls_endpoint_aliases": {
                        f"{name}_endpoint": f"{base}{MTLS_ALIAS}/oauth/{path}"
                        for name, path in _ALIASED
                    },
                }
                if self.tls
                else {}
            ),
            "token_endpoint_auth_signing_alg_values_supported": [
                a.strip() for a in self.knobs.assertion_algs.split(",") if a.strip()
            ]
            or ["RS256", "PS256", "ES256", "EdDSA", "HS256"],
            "response_types_supported": ["code"],
        }

    # -- control -----------------------------------------------------------------------------
    def configure(self, **knobs: Any) -> None:
        names = {f.name for f in fields(Knobs)}
        unknown = set(knobs) - names
        if unknown:
            raise TypeError(f"unknown knobs: {sorted(unknown)}")
        if knobs.get("malformed") not in (None, *MALFORMED):
            raise ValueError(f"malformed must be one of {sorted(MALFORMED)}")
        with self._lock:
            self.knobs = replace(self.knobs, **knobs)

    def control(self, changes: dict[str, Any]) -> Answer:
        try:
            self.configure(**changes)
        except (TypeError, ValueError) as exc:
            return 400, {"error": "invalid_request", "error_description": str(exc)}, {}
        return 200, asdict(self.knobs), {}

    def register(self, client: Client) -> None:
        with self._lock:
            self._clients[client.client_id] = client
            self._trust(client)

    def trust_issuer(self, federation: Federation) -> None:
        """Take `federation.issuer`'s tokens (checked against its JWKS) as client assertions,
        JWT-bearer assertions and token-exchange subject tokens for `federation.client_id`."""
        with self._lock:
            self._federations.append(federation)

    def _trust(self, client: Client) -> None:
        if self.tls and client.auth_method == "self_signed_tls_client_auth":
            self.tls.trust(client)

    @property
    def ca_pem(self) -> str:
        """The PEM certificate of the CA behind the HTTPS listener (`tls=True`)."""
        assert self.tls is not None, "the server was not started with tls=True"
        return self.tls.ca_pem

    def issue_certificate(self, common_name: str, key: Any = None) -> tuple[str, str]:
        """A tls_client_auth certificate signed by this server's CA (subject `CN=<name>`):
        PEM certificate and PEM private key (EC P-256 unless `key` is given)."""
        assert self.tls is not None, "the server was not started with tls=True"
        return self.tls.issue(common_name, key)

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            s = self._state
            return {
                "tokens_minted": sum(sum(c.values()) for c in s.minted.values()),
                "minted": {cid: dict(c) for cid, c in s.minted.items()},
                **{
                    k: s.counters.get(k, 0)
                    for k in (
                        "token_requests",
                        "refreshes",
                        "reuse_detections",
                        "family_revocations",
                        "api_200",
                        "api_401",
                        "api_429",
                        "rate_limited",
                        "faults",
                        "introspections",
                        "revocations",
                        "abandoned",
                        "lost_answers",
                        "access_revoked_on_rotation",
                    )
                },
                "inflight_ages": sorted(now - t for t in s.inflight.values()),
                "errors": {k[6:]: v for k, v in s.counters.items() if k.startswith("error:")},
            }

    def token_requests(self) -> list[dict[str, Any]]:
        """The last 1000 requests to the token endpoint, oldest first, answered or not. Each
        is a dict: `client_id` (from Basic or the form; None if neither names one),
        `auth_method` ("client_secret_basic", "client_secret_post" or "none") and `form`, the
        form fields with every non-empty secret (client_secret, refresh_token, code,
        code_verifier, assertions...) replaced by "***"."""
        with self._lock:
            return [{**r, "form": dict(r["form"])} for r in self._state.token_requests]

    def issue_code(
        self, client_id: str, scope: tuple[str, ...] = (), redirect_uri: str | None = None
    ) -> str:
        """A one-time authorization code, as if a user had just logged in and consented."""
        with self._lock:
            return issue_code(self._state, self.knobs, client_id, scope, redirect_uri)

    def revoke_all(self) -> None:
        """Invalidate every token and refresh token (a user logged out everywhere)."""
        with self._lock:
            self._state.access.clear()
            for record in self._state.refresh.values():
                self._state.revoked_families.add(record.family)

    def active_refresh_tokens(self, client_id: str) -> int:
        """How many unconsumed, unrevoked refresh tokens the client holds (chain alive > 0)."""
        now = time.monotonic()
        with self._lock:
            return sum(
                1
                for r in self._state.refresh.values()
                if r.client_id == client_id
                and not r.consumed
                and r.expires > now
                and not self._idle(r)
                and r.family not in self._state.revoked_families
            )
