"""The token value: what a token endpoint handed out and when it stops being valid."""

from __future__ import annotations

from freshtoken._record import record


@record
class Token:
    """An access token with its absolute expiry (wall-clock seconds since the epoch).

    `scope` is what the server said it granted, or None when it did not say.
    """

    access_token: str
    token_type: str
    expires_at: float
    issued_at: float
    refresh_token: str | None = None
    scope: tuple[str, ...] | None = None

    def expires_in(self, now: float) -> float:
        """Seconds left at `now` (negative once expired)."""
        return self.expires_at - now

    def valid_for(self, seconds: float, now: float) -> bool:
        """True when the token is still valid `seconds` after `now`."""
        return self.expires_at - now >= seconds

    @property
    def lifetime(self) -> float:
        return self.expires_at - self.issued_at

    @property
    def authorization(self) -> str:
        """The value of an `Authorization` header carrying this token."""
        return f"Bearer {self.access_token}"

    def __repr__(self) -> str:
        scope = "unstated" if self.scope is None else " ".join(self.scope) or "none"
        refresh = "held" if self.refresh_token else "none"
        return (
            f"Token(type={self.token_type}, expires_at={self.expires_at:.0f}, "
            f"lifetime={self.lifetime:.0f}s, scope={scope}, refresh_token={refresh})"
        )

    __str__ = __repr__
