"""How a token is printed: raw, json, header or env (github is the full command line's)."""

from __future__ import annotations

import time

FORMATS = ("raw", "json", "header", "env", "github")


def render(data: dict[str, object], fmt: str) -> str:
    """The token as `fmt` prints it (github is handled by the full command line)."""
    access = str(data["access_token"])
    if fmt == "json":
        import json

        keys = ("access_token", "token_type", "expires_in", "expires_at")
        return json.dumps({k: data[k] for k in keys})
    if fmt == "header":
        return f"Authorization: Bearer {access}"
    if fmt == "env":
        return f"FRESHTOKEN_ACCESS_TOKEN={access}"
    return access


def token_json(access_token: str, token_type: str, expires_at: float) -> dict[str, object]:
    return {
        "access_token": access_token,
        "token_type": token_type,
        "expires_in": int(expires_at - time.time()),
        "expires_at": expires_at,
    }
