"""`StoreContract`: the promises of `freshtoken.TokenStore` as a pytest test class.

A store author subclasses it and says how to make a fresh, empty store:

    class TestMyStore(StoreContract):
        def make_store(self) -> TokenStore:
            return MyStore(...)

Hooks for what not every store has: `lapse_lock` (a lock lease that can run out),
`stored_bytes` (what the store keeps at rest, checked for plain-text tokens), `scramble` and
`copy_at_rest` (writes at rest by someone without the store key: junk, and a sealed entry
copied under another cache key).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

from freshtoken._token import Token
from freshtoken.stores import Entry, TokenStore

_ACCESS = "at-contract-canary-7c1d"
_REFRESH = "rt-contract-canary-4b9e"
_TOKEN = Token(_ACCESS, "Bearer", 2e9, 1.9e9, scope=("read", "write"))
_OTHER = Token("at-contract-other-5e2a", "Bearer", 2e9, 1.9e9, scope=("admin",))


def _entry(n: int = 1) -> Entry:
    return Entry(_TOKEN, _REFRESH, mints=n, last_mint=1.9e9 + n)


class StoreContract:
    """Subclass it (as `Test...`) and define `make_store`; every test gets a fresh store."""

    def make_store(self) -> TokenStore:
        """A new, empty store."""
        raise NotImplementedError

    def lapse_lock(self, store: TokenStore, key: str) -> bool:
        """Make `key`'s lock lapse as it would for a holder paused past its lease; False
        when the store's locks have no lease (they are held until released, or the holder
        dies)."""
        return False

    def scramble(self, store: TokenStore, key: str) -> bool:
        """Overwrite `key`'s entry at rest with junk, as someone without the store key could;
        False for a store nobody else can write to."""
        return False

    def copy_at_rest(self, store: TokenStore, source: str, target: str) -> bool:
        """Copy `source`'s entry at rest, as it is kept (sealed), over `target`'s, as someone
        who can write to the store but has no store key could; False for a store nobody else
        can write to."""
        return False

    def stored_bytes(self, store: TokenStore) -> bytes | None:
        """Everything the store keeps at rest, to look for plain-text tokens; None for a
        store that keeps nothing outside this process."""
        return None

    @pytest.fixture
    def store(self) -> Iterator[TokenStore]:
        store = self.make_store()
        try:
            yield store
        finally:
            store.close()

    def test_absent_key_loads_none(self, store: TokenStore) -> None:
        assert store.load("absent") is None
        assert store.list_keys() == []

    def test_saved_entry_loads_back_whole(self, store: TokenStore) -> None:
        version = store.save(
            "k", Entry(_TOKEN, _REFRESH, "spending", "holder-1", mints=3, last_mint=1.9e9), 0
        )
        assert version
        loaded = store.load("k")
        assert loaded is not None
        assert loaded.token == _TOKEN and loaded.token.scope == ("read", "write")
        assert (loaded.refresh_token, loaded.phase_owner, loaded.mints) == (_REFRESH, "holder-1", 3)
        assert loaded.phase == "spending"
        assert loaded.last_mint == 1.9e9 and loaded.version == version

    def test_an_entry_may_hold_only_a_refresh_token(self, store: TokenStore) -> None:
        version = store.save("k", Entry(None, _REFRESH), 0)
        loaded = store.load("k")
        assert version and loaded is not None
        assert loaded.token is None and loaded.refresh_token == _REFRESH

    def test_save_is_compare_and_set(self, store: TokenStore) -> None:
        first = store.save("k", _entry(1), 0)
        assert first
        assert store.save("k", _entry(2), 0) is None  # it exists: 0 is stale
        second = store.save("k", _entry(2), first)
        assert second and second != first
        assert store.save("k", _entry(3), first) is None  # stale version
        loaded = store.load("k")
        assert loaded is not None and loaded.mints == 2 and loaded.version == second

    def test_no_version_comes_back_after_delete_and_recreate(self, store: TokenStore) -> None:
        old = store.save("k", _entry(1), 0)
        assert old
        store.delete("k")
        assert store.load("k") is None
        new = store.save("k", _entry(2), 0)
        assert new and new != old
        assert store.save("k", _entry(3), old) is None  # a holder of the old version loses (ABA)
        loaded = store.load("k")
        assert loaded is not None and loaded.mints == 2

    def test_one_of_many_concurrent_writers_wins(self, store: TokenStore) -> None:
        version = store.save("k", _entry(0), 0)
        assert version
        barrier = threading.Barrier(8)
        won: list[int | None] = []

        def write(n: int) -> None:
            barrier.wait()
            won.append(store.save("k", _entry(n), version))

        threads = [threading.Thread(target=write, args=(n,)) for n in range(1, 9)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(won) == 8 and sum(1 for v in won if v is not None) == 1

    def test_keys_are_independent_and_listed(self, store: TokenStore) -> None:
        for n, key in enumerate(("a", "b", "c"), start=1):
            assert store.save(key, _entry(n), 0)
        store.delete("b")
        store.delete("never-saved")  # deleting nothing is fine
        assert sorted(store.list_keys()) == ["a", "c"]
        a, c = store.load("a"), store.load("c")
        assert a is not None and a.mints == 1 and c is not None and c.mints == 3

    def test_pepper_is_secret_bytes_and_stable(self, store: TokenStore) -> None:
        assert isinstance(store.pepper, bytes) and len(store.pepper) >= 16
        assert store.pepper == store.pepper

    def test_lock_is_exclusive_and_released(self, store: TokenStore) -> None:
        with store.lock("k", 1.0) as held:
            assert held and store.owns_lock("k")
            assert _in_thread(lambda: store.lock("k", 0.0)) is False
            assert _in_thread(lambda: store.lock("other", 0.0)) is True  # per key
        assert _in_thread(lambda: store.lock("k", 0.0)) is True

    def test_lock_is_released_when_its_block_raises(self, store: TokenStore) -> None:
        with pytest.raises(ZeroDivisionError), store.lock("k", 1.0) as held:
            assert held
            _ = 1 / 0
        assert _in_thread(lambda: store.lock("k", 0.0)) is True

    def test_a_waiter_gets_the_lock_once_it_is_released(self, store: TokenStore) -> None:
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with store.lock("k", 1.0) as held:
                assert held
                holding.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        assert holding.wait(10)
        got: list[bool] = []
        waiter = threading.Thread(target=lambda: got.append(_take(store.lock("k", 10.0))))
        waiter.start()
        release.set()
        holder.join(10)
        waiter.join(10)
        assert got == [True]

    def test_a_lapsed_holder_never_releases_its_successors_lock(self, store: TokenStore) -> None:
        entered, lapsed, done = threading.Event(), threading.Event(), threading.Event()

        def paused_holder() -> None:
            with store.lock("k", 1.0) as held:
                assert held
                entered.set()
                lapsed.wait(10)  # paused past its lease; then it finishes and releases
            done.set()

        thread = threading.Thread(target=paused_holder)
        thread.start()
        assert entered.wait(10)
        if not self.lapse_lock(store, "k"):
            lapsed.set()
            thread.join(10)
            pytest.skip("this store's locks have no lease: a live holder keeps its lock")
        with store.lock("k", 5.0) as held:
            assert held and store.owns_lock("k")
            lapsed.set()
            assert done.wait(10)
            thread.join(10)
            assert store.owns_lock("k"), "the lapsed holder released its successor's lock"
            assert _in_thread(lambda: store.lock("k", 0.0)) is False

    def test_an_unreadable_entry_is_replaced_never_served(self, store: TokenStore) -> None:
        assert store.save("k", _entry(1), 0)
        if not self.scramble(store, "k"):
            pytest.skip("nobody else can write to this store")
        junk = store.load("k")  # no error, and never a token
        assert junk is None or (junk.token is None and junk.refresh_token is None)
        assert store.save("k", _entry(2), junk.version if junk else 0)
        loaded = store.load("k")
        assert loaded is not None and loaded.mints == 2

    def test_an_entry_copied_to_another_key_is_refused(self, store: TokenStore) -> None:
        """Store key binding: a sealed entry says which cache key it belongs to. One moved to
        another key (another client, scope or endpoint sharing the store) is never served
        there: that key's callers would get a token for what they did not ask for."""
        assert store.save("admin", Entry(_OTHER, "rt-contract-admin-91f3", mints=7), 0)
        assert store.save("k", _entry(1), 0)
        if not self.copy_at_rest(store, "admin", "k"):
            pytest.skip("nobody else can write to this store")
        moved = store.load("k")
        assert moved is None or (moved.token is None and moved.refresh_token is None), (
            "the store key binding: an entry sealed for another cache key was opened"
        )
        assert store.save("k", _entry(2), moved.version if moved else 0)
        loaded, source = store.load("k"), store.load("admin")
        assert loaded is not None and loaded.token == _TOKEN and loaded.mints == 2
        assert source is not None and source.token == _OTHER  # the original is untouched

    def test_nothing_secret_is_kept_in_plain_text(self, store: TokenStore) -> None:
        store.save("k", _entry(1), 0)
        kept = self.stored_bytes(store)
        if kept is None:
            pytest.skip("this store keeps nothing outside this process")
        assert kept, "stored_bytes found nothing: it does not look where the store writes"
        assert _ACCESS.encode() not in kept and _REFRESH.encode() not in kept


def _take(context: AbstractContextManager[bool]) -> bool:
    with context as held:
        return held


def _in_thread(make: Callable[[], AbstractContextManager[bool]]) -> bool:
    """Whether another thread gets the lock that `make()` opens (it is released at once)."""
    got: list[bool] = []
    thread = threading.Thread(target=lambda: got.append(_take(make())))
    thread.start()
    thread.join(15)
    return got == [True]
