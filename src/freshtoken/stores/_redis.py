"""`redis://` / `rediss://`: one store for a whole fleet of runners.

Entries are AES-GCM sealed (Redis is shared infrastructure) and expire with their token.
Keys carry a hash tag so an entry and its lock share a Redis Cluster slot
(`redis+cluster://` / `rediss+cluster://` open a cluster client from any node). The lock is a
lease (SET NX PX) released only by its owner; every write is compare-and-set on a random
version, so a holder paused past its lease can never overwrite what a newer holder wrote.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from freshtoken._errors import ConfigurationError, StoreError
from freshtoken._log import redact
from freshtoken._secret import Secret
from freshtoken._urls import split_url
from freshtoken.stores._base import StoreOptions, TokenStore, parse_key
from freshtoken.stores._entry import Entry, Envelope, Ledger
from freshtoken.stores._failopen import FailOpenStore

_CAS = """
local current = redis.call('HGET', KEYS[1], 'v')
if current == false then current = '0' end
if current ~= ARGV[1] then return false end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'b', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_VERSION_BITS = 52  # random versions: a recreated key can never repeat an old one (no ABA)


class RedisStore:
    """A Redis-backed TokenStore.

    A lock's `lease` is renewed every third of it while its holder lives, so a holder that
    dies (or is stopped) frees the lock within one lease, however long its mint takes.
    """

    def __init__(
        self,
        url: str,
        key: Secret | None,
        *,
        password: Secret | None = None,
        prefix: str = "freshtoken:",
        timeout: float = 1.0,
        lease: float = 10.0,
        refresh_token_ttl: float = 30 * 86400.0,
    ) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        if key is None:
            raise ConfigurationError(
                "a Redis store needs FRESHTOKEN_STORE_KEY",
                hint="Runners on different machines must share the key that seals entries: "
                "set FRESHTOKEN_STORE_KEY (base64 of 32 random bytes) on all of them.",
            )
        self._envelope = Envelope(parse_key(key, "FRESHTOKEN_STORE_KEY"))
        self.pepper = self._envelope.pepper
        parts = split_url(url, "FRESHTOKEN_STORE")
        cluster = parts.scheme.endswith("+cluster")
        if cluster:
            url = parts._replace(scheme=parts.scheme.removesuffix("+cluster")).geturl()
        self.display = f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"
        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),  # a caller waits one timeout, not several
            "health_check_interval": 0,
        }
        if password:
            options["password"] = password.reveal()
        try:
            if cluster:
                options.pop("health_check_interval")
                self._redis: Any = redis.RedisCluster.from_url(url, **options)
            else:
                self._redis = redis.Redis.from_url(url, **options)
        except ValueError as exc:
            raise ConfigurationError(
                f"FRESHTOKEN_STORE is not a valid Redis URL ({exc})",
                hint="Use redis://[user@]host:port/db or rediss://...",
            ) from None
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self.prefix = prefix
        self.lease = lease
        self.refresh_token_ttl = refresh_token_ttl
        self._cas = self._redis.register_script(_CAS)
        self._release = self._redis.register_script(_RELEASE)
        self._extend = self._redis.register_script(_EXTEND)
        self._owners: dict[str, str] = {}
        self._owners_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RedisStore({self.display!r})"

    @property
    def ledger(self) -> Ledger | None:
        """What this host saw of the store's entries (`Ledger`)."""
        return self._envelope.ledger

    def _key(self, key: str, kind: str) -> str:
        return f"{self.prefix}{{{key}}}:{kind}"

    def _fail(self, action: str, exc: BaseException) -> StoreError | ConfigurationError:
        text = str(exc)
        if type(exc).__name__.startswith("Authentication") or any(
            word in text for word in ("WRONGPASS", "NOAUTH", "invalid DB index", "NOPERM")
        ):
            # Not an outage to fail open on: the settings are wrong, and stay wrong.
            return ConfigurationError(
                f"the Redis store {self.display} refused this client: {type(exc).__name__}: "
                f"{redact(text)}",
                hint="Check FRESHTOKEN_REDIS_PASSWORD (or the URL's user and password), the "
                "user's ACL permissions, and the database number in FRESHTOKEN_STORE.",
            )
        hint = (
            "Check that Redis is up and reachable, and the credentials "
            "(FRESHTOKEN_REDIS_PASSWORD or the URL's user). With FRESHTOKEN_STORE_FAIL=open "
            "(the default) tokens keep flowing from this process meanwhile."
        )
        if type(exc).__name__ in ("MovedError", "AskError", "ClusterCrossSlotError"):
            hint = "This Redis is a cluster node: use redis+cluster://host:port (or " + (
                "rediss+cluster://) so that keys go to the node that holds their slot."
            )
        return StoreError(
            f"cannot {action} the Redis store {self.display}: {type(exc).__name__}: {redact(text)}",
            hint=hint,
        )

    def load(self, key: str) -> Entry | None:
        try:
            version, blob = self._redis.hmget(self._key(key, "entry"), ["v", "b"])
        except self._errors as exc:
            raise self._fail("read", exc) from None
        if not isinstance(version, bytes) or not isinstance(blob, bytes):
            return None
        # An entry that cannot be opened (junk written by someone without the store key) is
        # an empty entry: its version lets the next mint replace it.
        return self._envelope.open_entry(key, blob, int(version)) or Entry(
            None, version=int(version)
        )

    def _ttl_ms(self, entry: Entry) -> int:
        if entry.refresh_token:
            seconds = self.refresh_token_ttl
        elif entry.token is not None:
            seconds = entry.token.expires_at - time.time()
        else:
            seconds = 60.0
        return max(1000, int(seconds * 1000))

    def save(self, key: str, entry: Entry, expected: int) -> int | None:
        version = secrets.randbits(_VERSION_BITS) or 1
        blob, stored = self._envelope.seal_entry(key, entry)
        try:
            done = self._cas(
                keys=[self._key(key, "entry")],
                args=[str(expected), str(version), blob, self._ttl_ms(entry)],
            )
        except self._errors as exc:
            raise self._fail("write", exc) from None
        if not done:
            return None
        stored()
        return version

    def delete(self, key: str) -> None:
        try:
            self._redis.delete(self._key(key, "entry"))
        except self._errors as exc:
            raise self._fail("write", exc) from None
        if self.ledger is not None:
            self.ledger.forget(key)

    @contextmanager
    def lock(self, key: str, timeout: float) -> Iterator[bool]:
        name = self._key(key, "lock")
        owner = f"{os.getpid()}:{secrets.token_hex(12)}"  # the pid names the holder
        deadline = time.monotonic() + timeout
        pause = 0.002
        held = False
        try:
            while True:
                if self._redis.set(name, owner, nx=True, px=int(self.lease * 1000)):
                    held = True
                    break
                if time.monotonic() >= deadline:
                    break
                time.sleep(pause)  # a short backoff poll: the holder publishes by writing
                pause = min(pause * 2, 0.05)
        except self._errors as exc:
            raise self._fail("lock", exc) from None
        stop = threading.Event()
        if held:
            with self._owners_lock:
                self._owners[key] = owner
            threading.Thread(
                target=self._renew, args=(name, owner, stop), daemon=True, name="freshtoken-lease"
            ).start()
        try:
            yield held
        finally:
            stop.set()
            if held:
                with self._owners_lock:
                    if self._owners.get(key) == owner:  # a successor's lock stays its own
                        del self._owners[key]
                with contextlib.suppress(*self._errors):  # else the lease frees it
                    self._release(keys=[name], args=[owner])

    def _renew(self, name: str, owner: str, stop: threading.Event) -> None:
        lease_ms = int(self.lease * 1000)
        while not stop.wait(self.lease / 3):
            try:
                if not self._extend(keys=[name], args=[owner, lease_ms]):
                    return  # lost: owns_lock() now says so
            except self._errors:
                return

    def owns_lock(self, key: str) -> bool:
        with self._owners_lock:
            owner = self._owners.get(key)
        try:
            return owner is not None and self._redis.get(self._key(key, "lock")) == owner.encode()
        except self._errors:
            return False

    def list_keys(self) -> list[str]:
        try:
            names = self._redis.scan_iter(match=f"{self.prefix}{{*}}:entry", count=500)
            return [n.decode()[len(self.prefix) + 1 : -len("}:entry")] for n in names]
        except self._errors as exc:
            raise self._fail("list", exc) from None

    def close(self) -> None:
        self._redis.close()


def open_url(url: str, options: StoreOptions) -> TokenStore:
    """`redis://`, `rediss://` and their `+cluster` forms; wrapped to fail open unless
    `options.fail` is closed."""
    if options.fail not in ("open", "closed"):
        raise ConfigurationError(
            f"FRESHTOKEN_STORE_FAIL must be open or closed, not {options.fail!r}",
            hint="open: mint locally while Redis is down; closed: fail.",
        )
    store = RedisStore(
        url,
        options.key,
        password=options.redis_password,
        prefix=options.redis_prefix,
        timeout=options.timeout,
        lease=options.lease,
    )
    from freshtoken.stores import default_store_path

    # Kept on this host (in CI, the job's runner): it outlives a flushed or restarted Redis.
    store._envelope.ledger = Ledger(default_store_path().parent / "ledger")
    return FailOpenStore(store) if options.fail == "open" else store
