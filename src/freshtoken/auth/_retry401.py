"""The one rule for a refused token, shared by the httpx and requests adapters, the local
proxy and the provider SDK integration: send with a token from the source; after a 401,
invalidate that token (many callers that saw the same 401 cause one mint) and send once more;
a second 401 goes back to the caller, and so does the first when the source kept the refused
token (the broker's cooldown: it was minted moments ago to replace a refused one)."""

from __future__ import annotations

from freshtoken._token import Token
from freshtoken.auth._source import RenewableSource


class Retry401:
    """One request's attempts (make one per request)."""

    __slots__ = ("_token", "min_ttl", "retried", "source")

    def __init__(self, source: RenewableSource, min_ttl: float | None = None) -> None:
        self.source = source
        self.min_ttl = min_ttl
        self.retried = False
        self._token: Token | None = None

    def token(self) -> Token:
        """The token to send now."""
        if self._token is None:
            self._token = self.source.token(self.min_ttl)
        return self._token

    async def atoken(self) -> Token:
        if self._token is None:
            self._token = await self.source.atoken(self.min_ttl)
        return self._token

    def _retry(self, status: int, replayable: bool) -> Token | None:
        if status != 401 or self.retried or not replayable or self._token is None:
            return None
        self.retried = True
        return self._token

    def again(self, status: int, replayable: bool = True) -> Token | None:
        """After an answer with `status`: the token to send the request again with, or None
        to hand the answer to the caller (not a 401, already retried, or not replayable)."""
        refused = self._retry(status, replayable)
        if refused is None:
            return None
        self.source.invalidate(refused)
        self._token = self.source.token(self.min_ttl)
        return self._changed(refused)

    def _changed(self, refused: Token) -> Token | None:
        """The token to retry with, or None when it is the one just refused."""
        assert self._token is not None
        return None if self._token.access_token == refused.access_token else self._token

    async def aagain(self, status: int, replayable: bool = True) -> Token | None:
        refused = self._retry(status, replayable)
        if refused is None:
            return None
        import asyncio  # only where async is used

        await asyncio.to_thread(self.source.invalidate, refused)
        self._token = await self.source.atoken(self.min_ttl)
        return self._changed(refused)
