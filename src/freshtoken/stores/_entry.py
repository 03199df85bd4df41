"""What a store keeps per cache key, and its serialised form."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from freshtoken._token import Token


@dataclass(frozen=True, slots=True, repr=False)
class Entry:
    """The shared state of one cache key.

    `refresh_token` is kept apart from the access token (callers never see it).
    `spending` names the holder that presented `refresh_token` and has not yet stored the
    outcome: a successor must not present it again without checking it first.
    `spending_until` (wall time) is when that holder's attempt surely ended: before then the
    server may still be processing it.
    `lifetime` is how long a token of this key lives, remembered after the token is gone.
    `sink_pending`: `refresh_token` (rotated) is not yet written to the refresh-token sink.
    `past`: fingerprints of the refresh tokens this entry held before (its chain's elders and
    any seed it replaced): a seed among them is older than `refresh_token` and is ignored.
    `promised` (wall time) is the latest instant a caller was promised `token` stays valid:
    for a server that revokes the previous access token on rotation, no rotation before it;
    negative once a holder about to rotate closed the token to new promises.
    `revokes` is what was learned of that: whether rotating the refresh token revokes the
    previous access token (None: not known).
    `vouches` is what was learned about the server's introspection: True when it said active
    for a live refresh token (its "inactive" then means spent), False when it said inactive
    for one (it cannot tell), None when not known yet.
    `failure` is the error a detached spender met, for the caller whose mark it names (JSON).
    `version` is managed by the store (compare-and-set); it is not part of the payload.
    """

    token: Token | None
    refresh_token: str | None = None
    spending: str | None = None
    mints: int = 0
    last_mint: float = 0.0
    version: int = 0
    spending_until: float = 0.0
    lifetime: float = 0.0
    sink_pending: bool = False
    past: tuple[str, ...] = ()
    promised: float = 0.0
    revokes: bool | None = None
    vouches: bool | None = None
    failure: str | None = None

    def __repr__(self) -> str:
        return (
            f"Entry(token={self.token!r}, refresh_token="
            f"{'held' if self.refresh_token else 'none'}, spending={self.spending!r}, "
            f"mints={self.mints}, version={self.version})"
        )


def token_data(token: Token) -> dict[str, Any]:
    """`token` (without its refresh token) as plain JSON data: in an entry, or on a pipe."""
    return {
        "at": token.access_token,
        "tt": token.token_type,
        "exp": token.expires_at,
        "iat": token.issued_at,
        "scope": None if token.scope is None else list(token.scope),
    }


def token_from_data(t: dict[str, Any]) -> Token:
    """The token `token_data` wrote. Raises KeyError, TypeError or ValueError on anything else."""
    return Token(
        access_token=str(t["at"]),
        token_type=str(t["tt"]),
        expires_at=float(t["exp"]),
        issued_at=float(t["iat"]),
        scope=None if t["scope"] is None else tuple(t["scope"]),
    )


def encode(entry: Entry) -> bytes:
    token = entry.token
    data = {
        "t": None if token is None else token_data(token),
        "rt": entry.refresh_token,
        "sp": entry.spending,
        "n": entry.mints,
        "lm": entry.last_mint,
        "su": entry.spending_until,
        "lt": entry.lifetime,
        "wb": entry.sink_pending,
        "pr": list(entry.past),
        "pm": entry.promised,
        "rv": entry.revokes,
        "iv": entry.vouches,
        "fl": entry.failure,
    }
    return json.dumps(data, separators=(",", ":")).encode()


def decode(payload: bytes, version: int) -> Entry:
    """Raises ValueError (or KeyError/TypeError) on anything that is not an encoded entry."""
    data = json.loads(payload)
    return Entry(
        token=None if data["t"] is None else token_from_data(data["t"]),
        refresh_token=data["rt"],
        spending=data["sp"],
        mints=int(data["n"]),
        last_mint=float(data["lm"]),
        version=version,
        spending_until=float(data.get("su", 0.0)),
        lifetime=float(data.get("lt", 0.0)),
        sink_pending=bool(data.get("wb", False)),
        past=tuple(str(p) for p in data.get("pr", ())),
        promised=float(data.get("pm", 0.0)),
        revokes=None if data.get("rv") is None else bool(data["rv"]),
        vouches=None if data.get("iv") is None else bool(data["iv"]),
        failure=None if data.get("fl") is None else str(data["fl"]),
    )


#: How many fingerprints of earlier refresh tokens an entry keeps (the first is always kept:
#: it is the seed a job's later steps see again in their environment).
PAST_KEPT = 64


def fingerprint(refresh_token: str) -> str:
    """A short, one-way name of a refresh token (kept only inside sealed entries)."""
    return hashlib.sha256(refresh_token.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def with_past(past: tuple[str, ...], old: str | None, new: str | None) -> tuple[str, ...]:
    """`past` once `old` is replaced by `new` (nothing changes when they are the same)."""
    if old is None or old == new:
        return past
    mark = fingerprint(old)
    if mark in past:
        return past
    grown = (*past, mark)
    return grown if len(grown) <= PAST_KEPT else (grown[0], *grown[-(PAST_KEPT - 1) :])
