"""The test server's protected API: a bearer token checked against the tokens issued, the API's
rate limit, a certificate-bound token accepted only with its certificate (RFC 8705 §3), and
the imitated provider's `DELETE /api/v2/tokens/me` (a token revoking itself)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from freshtoken.testing._faults import api_rate_limited, api_unauthorized, over_limit
from freshtoken.testing._model import AccessRecord, Answer, Knobs, State
from freshtoken.testing._tls import x5t_s256


class ProtectedApi:
    """Mixed into `Authority`, which holds the state these read."""

    knobs: Knobs
    _state: State
    _lock: threading.Lock

    def _count(self, key: str, n: int = 1) -> None:
        counters: Counter[str] = self._state.counters
        counters[key] += n

    def check_bearer(self, authorization: str, peer: bytes | None = None) -> AccessRecord | None:
        """The live token of a Bearer header; a bound one only with its certificate (`peer`,
        the DER certificate of the connection)."""
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        with self._lock:
            record = self._state.access.get(value.strip())
            if record is None or record.expires <= time.monotonic():
                return None
            if record.cnf is not None and (peer is None or x5t_s256(peer) != record.cnf):
                self._count("api_unbound")  # RFC 8705 §3: bound, and not over its certificate
                return None
            return record

    def handle_api(self, authorization: str, peer: bytes | None = None) -> Answer:
        k = self.knobs
        with self._lock:
            if (
                k.api_rate_limit
                and (wait := over_limit(self._state.api_window, k.api_rate_limit, 60.0)) is not None
            ):
                self._count("api_429")
                return api_rate_limited(wait)
        record = self.check_bearer(authorization, peer)
        with self._lock:
            if record is None:
                self._count("api_401")
                return api_unauthorized()
            self._count("api_200")
        body: dict[str, Any] = {
            "id": record.client_id,
            "name": record.client_id,
            "scope": " ".join(record.scope),
        }
        if record.cnf:
            body["cnf"] = {"x5t#S256": record.cnf}
        return 200, body, {}

    def delete_token_me(self, authorization: str, peer: bytes | None = None) -> Answer:
        """`DELETE /api/v2/tokens/me`: the bearer token revokes itself; later calls with it
        get 401."""
        answer = self.handle_api(authorization, peer)
        if answer[0] != 200:
            return answer
        with self._lock:
            self._state.access.pop(authorization.partition(" ")[2].strip(), None)
            self._count("revocations")
        return 204, "", {}
