"""What a store keeps per cache key, and its serialised form."""

from __future__ import annotations

import json
from dataclasses import dataclass

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
    `vouches` is what was learned about the server's introspection: True when it said active
    for a live refresh token (its "inactive" then means spent), False when it said inactive
    for one (it cannot tell), None when not known yet.
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
    vouches: bool | None = None

    def __repr__(self) -> str:
        return (
            f"Entry(token={self.token!r}, refresh_token="
            f"{'held' if self.refresh_token else 'none'}, spending={self.spending!r}, "
            f"mints={self.mints}, version={self.version})"
        )


def encode(entry: Entry) -> bytes:
    token = entry.token
    data = {
        "t": None
        if token is None
        else {
            "at": token.access_token,
            "tt": token.token_type,
            "exp": token.expires_at,
            "iat": token.issued_at,
            "scope": None if token.scope is None else list(token.scope),
        },
        "rt": entry.refresh_token,
        "sp": entry.spending,
        "n": entry.mints,
        "lm": entry.last_mint,
        "su": entry.spending_until,
        "lt": entry.lifetime,
        "iv": entry.vouches,
    }
    return json.dumps(data, separators=(",", ":")).encode()


def decode(payload: bytes, version: int) -> Entry:
    """Raises ValueError (or KeyError/TypeError) on anything that is not an encoded entry."""
    data = json.loads(payload)
    t = data["t"]
    token = (
        None
        if t is None
        else Token(
            access_token=str(t["at"]),
            token_type=str(t["tt"]),
            expires_at=float(t["exp"]),
            issued_at=float(t["iat"]),
            scope=None if t["scope"] is None else tuple(t["scope"]),
        )
    )
    return Entry(
        token=token,
        refresh_token=data["rt"],
        spending=data["sp"],
        mints=int(data["n"]),
        last_mint=float(data["lm"]),
        version=version,
        spending_until=float(data.get("su", 0.0)),
        lifetime=float(data.get("lt", 0.0)),
        vouches=None if data.get("iv") is None else bool(data["iv"]),
    )
