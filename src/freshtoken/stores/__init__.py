"""Where tokens are shared: stores chosen by the scheme of `FRESHTOKEN_STORE`.

A new store is a module here with an `open_url(url, options)` function and a row in
`SCHEMES`; `freshtoken.testing.StoreContract` checks that it keeps the `TokenStore` promises.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

from freshtoken._errors import ConfigurationError
from freshtoken._platform import user_dir
from freshtoken._secret import Secret
from freshtoken.stores._base import StoreOptions, TokenStore
from freshtoken.stores._entry import Entry

if TYPE_CHECKING:
    from pathlib import Path

# scheme -> the module whose `open_url` opens it; imported only when used (redis is heavy).
SCHEMES: dict[str, str] = {
    "memory": "freshtoken.stores._memory",
    "sqlite": "freshtoken.stores._sqlite",
    "redis": "freshtoken.stores._redis",
    "rediss": "freshtoken.stores._redis",
    "redis+cluster": "freshtoken.stores._redis",
    "rediss+cluster": "freshtoken.stores._redis",
}


def default_store_file(environ: Mapping[str, str] | None = None) -> str:
    """$RUNNER_TEMP on GitHub Actions (shared by the job's steps), else the user cache dir."""
    env = os.environ if environ is None else environ
    if env.get("GITHUB_ACTIONS") == "true" and env.get("RUNNER_TEMP"):
        return os.path.join(env["RUNNER_TEMP"], "freshtoken", "tokens.db")
    return os.path.join(user_dir("cache"), "tokens.db")


def default_store_path(environ: Mapping[str, str] | None = None) -> Path:
    """`default_store_file` as a Path (a store opens it by its string: pathlib costs 6 M)."""
    from pathlib import Path

    return Path(default_store_file(environ))


def open_store(
    url: str | None,
    key: Secret | str | None = None,
    *,
    redis_password: Secret | str | None = None,
    redis_prefix: str = "freshtoken:",
    timeout: float = 1.0,
    lease: float = 10.0,
    fail: str = "open",
) -> TokenStore:
    """A store from `FRESHTOKEN_STORE`: `memory://`, `sqlite:///path`, `redis://...`,
    `rediss://...` (`redis+cluster://`, `rediss+cluster://` for a Redis Cluster), or (unset)
    SQLite in the default place."""
    key, redis_password = (Secret(s) if isinstance(s, str) else s for s in (key, redis_password))
    options = StoreOptions(key, redis_password, redis_prefix, timeout, lease, fail)
    if not url or url in ("sqlite://", "sqlite:///"):
        from freshtoken.stores._sqlite import open_file

        return open_file(default_store_file(), options)
    scheme = urlsplit(url).scheme
    module = SCHEMES.get(scheme)
    if module is None:
        raise ConfigurationError(
            f"FRESHTOKEN_STORE has an unknown form: {scheme or url!r}",
            hint="Use memory://, sqlite:///absolute/path/tokens.db, redis://host:port/db, "
            "rediss://..., redis+cluster://host:port, or leave it unset for the default SQLite "
            "store.",
        )
    # __import__ is what importlib.import_module calls (importlib's package costs a hit 0.6 M)
    return cast(TokenStore, __import__(module, fromlist=["open_url"]).open_url(url, options))


__all__ = [
    "SCHEMES",
    "Entry",
    "StoreOptions",
    "TokenStore",
    "default_store_file",
    "default_store_path",
    "open_store",
]
