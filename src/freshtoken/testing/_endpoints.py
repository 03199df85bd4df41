"""The authorization server's OAuth logic, without HTTP: client authentication, the three grants
with refresh-token rotation and reuse detection, introspection, revocation and the protected API.
"""

from __future__ import annotations

import math
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from freshtoken.testing._api import ProtectedApi
from freshtoken.testing._authorize import (
    Refusal,
    authorize,
    decide_device,
    device_authorization,
    id_token,
    poll_device,
    redeem_code,
)
from freshtoken.testing._client_auth import (
    Refused,
    assertion_method,
    basic_credentials,
    check_assertion,
    request_method,
    secret_matches,
)
from freshtoken.testing._faults import (
    bare_refusal,
    error_body,
    gateway_error,
    malformed_answer,
    over_limit,
    rate_limit_description,
    rate_limited_429,
    unavailable,
)
from freshtoken.testing._federation import (
    ISSUED_TYPE,
    JWT_BEARER,
    TOKEN_EXCHANGE,
    Federation,
    check_grant,
    federated_client,
)
from freshtoken.testing._model import (
    ALL_GRANTS,
    DEVICE_CODE_GRANT,
    AccessRecord,
    Answer,
    Client,
    Knobs,
    RefreshRecord,
    State,
)
from freshtoken.testing._tls import TLS_METHODS, peer_certificate, tls_refusal, x5t_s256

# Form fields whose values `token_requests` masks.
SECRET_FIELDS = frozenset(
    {
        "client_secret",
        "client_assertion",
        "assertion",
        "refresh_token",
        "code",
        "code_verifier",
        "device_code",
        "password",
        "subject_token",
        "actor_token",
    }
)


class Authority(ProtectedApi):
    """Clients, knobs and issued tokens, and the endpoints' answers. Methods without a
    leading underscore take the lock; the others expect it held."""

    def __init__(self, knobs: Knobs, clients: list[Client]) -> None:
        self.knobs = knobs
        self._clients = {c.client_id: c for c in clients}
        self._state = State()
        self._lock = threading.Lock()
        self._rng = random.Random(knobs.seed)
        self._federations: list[Federation] = []  # issuers whose tokens it takes
        self._binding: str | None = None  # x5t#S256 the tokens of this request are bound to
        self._method = ""  # the client-authentication method of the token request answered

    def _mint(
        self,
        client: Client,
        scope: tuple[str, ...],
        grant: str,
        family: str | None,
        with_refresh: bool,
    ) -> dict[str, Any]:
        k = self.knobs
        ttl = client.ttl or k.ttl
        now = time.monotonic()
        access = "at_" + secrets.token_urlsafe(24)
        self._state.access[access] = AccessRecord(
            client.client_id, scope, now + ttl, family, grant, self._binding
        )
        self._state.minted[client.client_id][grant] += 1
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": max(1, math.floor(ttl)),
        }
        if with_refresh:
            family = family or "fam_" + secrets.token_urlsafe(8)
            refresh = "rt_" + secrets.token_urlsafe(24)
            self._state.refresh[refresh] = RefreshRecord(
                client.client_id,
                scope,
                now + k.refresh_token_ttl,
                family,
                last_used=now,
                access=access,
                method=self._method,
            )
            body["refresh_token"] = refresh
        if k.scope_in_response:
            body["scope"] = " ".join(scope)
        return body

    def _error(
        self, status: int, code: str, description: str, headers: dict[str, str] | None = None
    ) -> Answer:
        self._count("error:" + code)
        return status, error_body(self.knobs.error_style, code, description), headers or {}

    def _authenticate(self, headers: Any, form: dict[str, str]) -> Client | Answer:
        basic = headers.get("Authorization", "")
        method = "client_secret_basic" if basic.lower().startswith("basic ") else ""
        if assertion_method(form):
            return self._asserted(form, bool(method or "client_secret" in form))
        if method:
            if "client_secret" in form:
                return self._error(400, "invalid_request", "more than one client authentication")
            try:
                cid, secret = basic_credentials(basic)
            except ValueError:
                return self._error(400, "invalid_request", "malformed Basic credentials")
        else:
            cid, secret = form.get("client_id", ""), form.get("client_secret", "")
        client = self._clients.get(cid)
        if client is not None and client.auth_method in TLS_METHODS and not (method or secret):
            why = tls_refusal(client, peer_certificate(headers))
            return client if why is None else self._error(401, "invalid_client", why)
        method = method or ("client_secret_post" if secret else "none")
        ok = (
            client is not None
            and (
                secret_matches(client.secret, secret)
                if client.secret
                else not (secret or client.jwks)
            )
            and client.auth_method in (None, method)
        )
        if not ok or client is None:
            challenge = {"WWW-Authenticate": 'Basic realm="freshtoken-testserver"'}
            return self._error(401, "invalid_client", "authentication failed", challenge)
        return client

    def _asserted(self, form: dict[str, str], another: bool) -> Client | Answer:
        if another:
            return self._error(400, "invalid_request", "more than one client authentication")
        where = {name: getattr(self, name, "") for name in ("token_url", "issuer")}
        try:
            federated = federated_client(form, self._federations, self._clients, time.time())
            return federated or check_assertion(
                form, self._clients, self.knobs, where, seen=self._state.jtis, now=time.time()
            )
        except Refused as exc:
            return self._error(401, "invalid_client", str(exc))

    def _remember(self, headers: Any, form: dict[str, str]) -> None:
        """Record a token request as `token_requests` returns it."""
        method, client_id = request_method(headers, form)
        masked = {k: "***" if k in SECRET_FIELDS and v else v for k, v in form.items()}
        self._state.token_requests.append(
            {"client_id": client_id, "auth_method": method, "form": masked}
        )

    def handle_token(
        self,
        headers: Any,
        form: dict[str, str],
        client_gone: Callable[[], bool] = lambda: False,
    ) -> Answer | None:
        """The token endpoint; None means the request was dropped unanswered."""
        k = self.knobs
        marker = id(form)
        with self._lock:
            self._state.inflight[marker] = time.monotonic()
            self._remember(headers, form)
        try:
            if k.latency:
                time.sleep(k.latency)
            if k.abandon_on_disconnect and client_gone():
                with self._lock:
                    self._count("abandoned")
                return None
            return self._token_locked(headers, form)
        finally:
            with self._lock:
                self._state.inflight.pop(marker, None)

    def _token_locked(self, headers: Any, form: dict[str, str]) -> Answer:
        k = self.knobs
        with self._lock:
            self._count("token_requests")
            if fault := self._fault(k):
                return fault
            answer = self._grant(headers, form)
            if k.lost_answers > 0:
                self.knobs = replace(k, lost_answers=k.lost_answers - 1)
                self._count("lost_answers")
                return gateway_error(self._state.counters["lost_answers"])
            if k.bare_refusals:
                return bare_refusal(answer, form.get("grant_type", ""), k.bare_refusal_status)
            return answer

    def _fault(self, k: Knobs) -> Answer | None:
        """The rate limit, an injected 503 or a malformed answer, when the knobs call for one."""
        if (
            k.rate_limit
            and (wait := over_limit(self._state.window, k.rate_limit, k.rate_window)) is not None
        ):
            self._count("rate_limited")
            if k.rate_limit_style == "429":
                return rate_limited_429(wait)
            return self._error(400, "invalid_request", rate_limit_description(wait))
        if k.fail_first > 0 or (k.failure_rate and self._rng.random() < k.failure_rate):
            self.knobs = replace(k, fail_first=max(0, k.fail_first - 1))
            self._count("faults")
            return unavailable()
        if k.malformed:
            return malformed_answer(k.malformed)
        return None

    def _grant(self, headers: Any, form: dict[str, str]) -> Answer:
        authed = self._authenticate(headers, form)
        self._method = request_method(headers, form)[0]  # a refresh token issued is tagged
        grant = form.get("grant_type", "")
        peer = peer_certificate(headers)  # RFC 8705 §3: bind to the certificate presented
        self._binding = x5t_s256(peer) if peer and self.knobs.bind_tokens else None
        if not isinstance(authed, Client):
            burnt = self._state.refresh.get(form.get("refresh_token", ""))
            if grant == "refresh_token" and burnt and self.knobs.failed_auth_burns_refresh:
                self._revoke_family(burnt.family)
            return authed
        client = authed
        if grant not in ALL_GRANTS:
            return self._error(400, "unsupported_grant_type", f"grant {grant!r} not supported")
        if grant not in client.grants:
            return self._error(400, "unauthorized_client", f"client may not use the {grant} grant")
        requested, k = tuple(form.get("scope", "").split()), self.knobs
        if grant == "client_credentials":
            if not requested and self.knobs.client_credentials_need_scope:
                return self._error(400, "invalid_scope", "a scope is required")
            if client.scopes is not None and self.knobs.narrow_scope:
                requested = tuple(s for s in requested if s in client.scopes)
            if client.scopes is not None and not set(requested) <= client.scopes:
                bad = " ".join(sorted(set(requested) - client.scopes))
                return self._error(400, "invalid_scope", f"scope not allowed: {bad}")
            body = self._mint(
                client, requested, grant, None, self.knobs.refresh_on_client_credentials
            )
            return 200, body, {}
        if grant in (JWT_BEARER, TOKEN_EXCHANGE):
            if why := check_grant(grant, form, self._federations, client, time.time()):
                return self._error(400, "invalid_grant", why)
            name = "jwt_bearer" if grant == JWT_BEARER else "token_exchange"
            body = self._mint(client, requested, name, None, False)
            if grant == TOKEN_EXCHANGE:
                body["issued_token_type"] = ISSUED_TYPE  # RFC 8693 §2.2.1
            return 200, body, {}
        if grant in ("authorization_code", DEVICE_CODE_GRANT):
            redeem = redeem_code if grant == "authorization_code" else poll_device
            granted = redeem(self._state, client, form)
            if isinstance(granted, Refusal):
                return self._error(*granted)
            offline = "offline_access" in granted.scope or not k.offline_access_needs_consent
            body = self._mint(client, granted.scope, grant, None, offline)
            if "openid" in granted.scope:
                nonce = "not-" + str(granted.nonce) if k.wrong_nonce else granted.nonce
                body["id_token"] = id_token(client.client_id, nonce)
            return 200, body, {}
        return self._refresh(client, form.get("refresh_token", ""), requested)

    def authorize(self, query: dict[str, str]) -> Answer:
        """GET /oauth/authorize (see `_authorize.authorize`)."""
        with self._lock:
            return authorize(
                self._state, self.knobs, self._clients.get(query.get("client_id", "")), query
            )

    def device_authorization(self, headers: Any, form: dict[str, str], base_url: str) -> Answer:
        """POST /oauth/device_authorization: client authentication as at the token endpoint."""
        with self._lock:
            authed = self._authenticate(headers, form)
            if not isinstance(authed, Client):
                return authed
            said = device_authorization(self._state, self.knobs, authed, form, base_url)
            return self._error(*said) if isinstance(said, Refusal) else said

    def decide_device(self, user_code: str, approve: bool = True) -> bool:
        """Approve (or deny) a pending device login by its user code, as the user would on the
        verification page; False when no pending login has that code."""
        with self._lock:
            return decide_device(self._state, user_code, approve)

    def _refresh(self, client: Client, presented: str, requested: tuple[str, ...]) -> Answer:
        k = self.knobs
        record = self._state.refresh.get(presented)
        if record is None or record.client_id != client.client_id:
            return self._error(400, "invalid_grant", "refresh token invalid")
        if record.family in self._state.revoked_families:
            return self._error(400, "invalid_grant", "refresh token revoked")
        if record.consumed:
            if k.reuse_detection:
                self._count("reuse_detections")
                self._revoke_family(record.family)
                return self._error(
                    400, "invalid_grant", "refresh token reuse detected; grant revoked"
                )
            return self._error(400, "invalid_grant", "refresh token already used")
        if record.expires <= time.monotonic() or self._idle(record):
            return self._error(400, "invalid_grant", "refresh token expired")
        record.last_used = time.monotonic()
        scope = requested or record.scope
        if not set(scope) <= set(record.scope):
            return self._error(400, "invalid_scope", "scope wider than the original grant")
        self._count("refreshes")
        body = self._mint(client, scope, "refresh_token", record.family, k.rotate_refresh_tokens)
        if k.rotate_refresh_tokens:
            record.consumed = True
            if k.revoke_access_on_rotation and record.access in self._state.access:
                del self._state.access[record.access]
                self._count("access_revoked_on_rotation")
        else:
            body["refresh_token"] = presented
        return 200, body, {}

    def _idle(self, record: RefreshRecord) -> bool:
        idle = self.knobs.refresh_token_idle
        return bool(idle) and time.monotonic() - record.last_used >= idle

    def _revoke_family(self, family: str) -> None:
        if family not in self._state.revoked_families:
            self._count("family_revocations")
        self._state.revoked_families.add(family)
        for token, access in list(self._state.access.items()):
            if access.family == family:
                del self._state.access[token]

    def introspect(self, headers: Any, form: dict[str, str]) -> Answer:
        with self._lock:
            authed = self._authenticate(headers, form)
            if not isinstance(authed, Client):
                return authed
            self._count("introspections")
            token = form.get("token", "")
            now = time.monotonic()
            access = self._state.access.get(token)
            if access and access.expires > now and access.client_id == authed.client_id:
                return (
                    200,
                    {
                        "active": True,
                        "client_id": access.client_id,
                        "scope": " ".join(access.scope),
                        "token_type": "Bearer",
                        "exp": int(time.time() + access.expires - now),
                        **({"cnf": {"x5t#S256": access.cnf}} if access.cnf else {}),
                    },
                    {},
                )
            refresh = self._state.refresh.get(token)
            if (
                refresh
                and self.knobs.introspect_refresh_tokens
                and not refresh.consumed
                and refresh.expires > now
                and not self._idle(refresh)
                and refresh.family not in self._state.revoked_families
                and refresh.client_id == authed.client_id
                and (
                    not self.knobs.introspection_sees_own_method_only
                    or refresh.method == request_method(headers, form)[0]
                )
            ):
                return (
                    200,
                    {"active": True, "client_id": refresh.client_id, "token_type": "refresh_token"},
                    {},
                )
            return 200, {"active": False}, {}

    def revoke(self, headers: Any, form: dict[str, str]) -> Answer:
        with self._lock:
            authed = self._authenticate(headers, form)
            if not isinstance(authed, Client):
                return authed
            self._count("revocations")
            token = form.get("token", "")
            access = self._state.access.get(token)
            if access and access.client_id == authed.client_id:
                del self._state.access[token]
            refresh = self._state.refresh.get(token)
            if refresh and refresh.client_id == authed.client_id:
                self._revoke_family(refresh.family)
            return 200, {}, {}
