"""A refresh that outlives its caller, and introspection that cannot vouch for refresh tokens:
real `freshtoken token` processes killed with their process group mid-refresh (as a cancelled
CI step is), a spender process killed mid-request, against the real test server and a SQLite
store."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest

from freshtoken import AuthorizationCode, RefreshTokenGrant, Settings, Token, TokenBroker
from freshtoken._errors import InvalidGrantError, OAuthError
from freshtoken.cli._status import vouching
from freshtoken.stores import Entry
from freshtoken.stores._entry import ServerFacts, decode, encode
from freshtoken.stores._sqlite import SQLiteStore
from freshtoken.testing import AuthServer, Client
from tests._cli import cli_env, ft
from tests._fleet import worker_env
from tests.helpers import (
    CANARY_SECRET,
    FT,
    live_processes,
    make_broker,
    make_client,
    wait_until,
)

pytestmark = pytest.mark.skipif(not Path("/proc/self").exists(), reason="reads /proc")
SPENDER = "freshtoken.broker._spender"


def _seed(broker: TokenBroker, server: AuthServer, client_id: str, secret: str) -> str:
    client = make_client(server, client_id=client_id, secret=secret)
    seed = client.fetch(AuthorizationCode(server.issue_code(client_id)))
    assert seed.refresh_token
    broker.seed_refresh_token(seed.refresh_token)
    return seed.refresh_token


def _entry(broker: TokenBroker) -> Entry:
    # The broker's own store: a second SQLite store on the same file in one process would
    # release the first one's file locks when it closes.
    entry = broker.store.load(broker.key)
    assert entry is not None
    return entry


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


@pytest.mark.slow
def test_refresh_chain_survives_callers_killed_with_their_process_group(tmp_path: Path) -> None:
    """`freshtoken token` callers in sessions of their own (a CI step each), SIGKILLed with
    their whole process group at random, mostly while their refresh is at the server: every
    rotation the server made is stored, no refresh token is presented twice."""
    rng = random.Random(15)
    db = tmp_path / "t.db"
    # Tokens live 3 s, callers ask 1 s: a loaded machine's spender start and store read took
    # the whole second that 2-s tokens left ("a new token had 1.0s left when it arrived").
    with AuthServer(ttl=3, latency=0.4) as server:
        env = worker_env(server, db, FRESHTOKEN_GRANT="refresh_token")
        seeder = TokenBroker.from_settings(Settings.from_env(env))
        _seed(seeder, server, "demo-client", "demo-secret")
        ok, errors = tmp_path / "ok", tmp_path / "errors"
        loop = (
            f"while :; do {' '.join(FT)} -q token --min-ttl 1 >/dev/null 2>>{errors} "
            f"&& echo >> {ok}; done"
        )

        def caller() -> subprocess.Popen[bytes]:
            return subprocess.Popen(["sh", "-c", loop], env=env, start_new_session=True)

        callers = [caller() for _ in range(3)]
        kills = kills_mid_refresh = 0
        try:
            # Counted, not timed: a loaded machine takes longer to get there, not fewer faults.
            while kills < 8 or kills_mid_refresh < 4:
                assert kills < 40, f"{kills_mid_refresh} of {kills} kills were mid-refresh"
                wait_until(lambda: bool(server.stats()["inflight_ages"]), timeout=60)
                # A caller whose spender is at the server (the spender's parent is in it).
                spending = {_pgid(parent) for parent in live_processes(SPENDER).values()}
                mid = [c for c in callers if c.pid in spending]
                victim = mid[0] if mid and rng.random() < 0.8 else rng.choice(callers)
                kills_mid_refresh += victim in mid
                os.killpg(victim.pid, signal.SIGKILL)
                victim.wait()
                kills += 1
                callers[callers.index(victim)] = caller()
                time.sleep(rng.uniform(0, 0.5))  # a random instant, not a synchronisation
        finally:
            for c in callers:
                os.killpg(c.pid, signal.SIGKILL)
                c.wait()
        # The spenders of killed callers finish on their own and store what the server said.
        wait_until(lambda: not server.stats()["inflight_ages"], timeout=60)
        wait_until(lambda: _entry(seeder).phase_owner is None, timeout=60)
        entry, stats = _entry(seeder), server.stats()
        assert entry.refresh_token is not None
        # The chain is alive: the stored refresh token is the live one.
        make_client(server).fetch(RefreshTokenGrant(entry.refresh_token))
    assert kills >= 8 and kills_mid_refresh >= 4, (kills, kills_mid_refresh)
    assert stats["family_revocations"] == 0 and stats["reuse_detections"] == 0
    assert entry.mints == stats["refreshes"] >= kills_mid_refresh
    assert entry.facts.introspection_vouches is True
    assert ok.exists(), "no caller got a token"
    assert not errors.exists() or not errors.read_text(), errors.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("server_finishes", [False, True])
def test_a_dead_spender_with_a_server_that_cannot_vouch_leaves_the_token_alone(
    tmp_path: Path, server_finishes: bool
) -> None:
    """The spender itself is SIGKILLed while the server holds its request; introspection
    says inactive for every refresh token. The next holder can tell nothing: it neither
    presents the token again (it may be spent) nor drops it (it may be live)."""
    client = Client("canary-client", CANARY_SECRET)
    knobs: dict[str, Any] = {"introspect_refresh_tokens": False, "latency": 1.0}
    with AuthServer(clients=[client], abandon_on_disconnect=not server_finishes, **knobs) as server:
        db = tmp_path / "t.db"
        settings = Settings(
            token_url=server.token_url,
            introspection_url=server.url + "/oauth/introspect",
            client_id="canary-client",
            client_secret=CANARY_SECRET,  # type: ignore[arg-type]  # wrapped at once
            store=f"sqlite://{db}",
            grant="refresh_token",
            connect_timeout=0.5,
            read_timeout=1.5,
        )
        broker = TokenBroker.from_settings(settings)
        seed = _seed(broker, server, "canary-client", CANARY_SECRET)
        failed: list[OAuthError] = []

        def call() -> None:
            try:
                broker.token()
            except OAuthError as exc:
                failed.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        wait_until(lambda: bool(server.stats()["inflight_ages"]), timeout=10)
        [spender] = [
            pid for pid, parent in live_processes(SPENDER).items() if parent == os.getpid()
        ]
        for what in ("cmdline", "environ"):  # its secrets came on stdin
            assert CANARY_SECRET.encode() not in Path(f"/proc/{spender}/{what}").read_bytes()
        os.kill(spender, signal.SIGKILL)
        caller.join(timeout=10)
        assert failed and "ended without an answer" in failed[0].message
        wait_until(lambda: not server.stats()["inflight_ages"], timeout=10)
        assert server.stats()["refreshes"] == int(server_finishes)
        marked = _entry(broker)
        assert (marked.refresh_token, marked.facts.introspection_vouches) == (seed, False)
        assert vouching(marked) == "no"

        # The next holder (this one again) waits out the attempt's window, then cannot tell.
        with pytest.raises(OAuthError) as info:
            broker.token()
        assert "cannot be told" in info.value.message
        assert "seed" in info.value.hint
        kept, stats = _entry(broker), server.stats()
        assert kept.refresh_token == seed and kept.phase == "spending"
        assert stats["refreshes"] == int(server_finishes)  # not presented again
        assert stats["reuse_detections"] == stats["family_revocations"] == 0
        if not server_finishes:
            # It was live all along: seeding it again, as the hint says, picks the chain up.
            broker.seed_refresh_token(seed)
            assert broker.token().access_token
            assert server.stats()["refreshes"] == 1
            assert server.active_refresh_tokens("canary-client") == 1


@pytest.mark.slow
def test_what_introspection_vouches_for_is_learned_once_and_kept(tmp_path: Path) -> None:
    for knob, expected in ((True, "yes"), (False, "no")):
        db = tmp_path / f"{knob}.db"
        with AuthServer(introspect_refresh_tokens=knob) as server:
            settings = Settings.from_env(worker_env(server, db, FRESHTOKEN_GRANT="refresh_token"))
            broker = TokenBroker.from_settings(settings, invalidate_cooldown=0)
            _seed(broker, server, "demo-client", "demo-secret")
            assert vouching(_entry(broker)) == "unknown"
            for _ in range(3):
                broker.invalidate(broker.token())
            assert vouching(_entry(broker)) == expected
            stats = server.stats()
            assert (stats["introspections"], stats["refreshes"]) == (1, 3)


def test_an_entry_stored_before_vouches_existed_decodes() -> None:
    old = b'{"t":null,"rt":"rt_x","sp":null,"n":1,"lm":0.0,"su":0.0,"lt":60.0}'
    assert decode(old, 7).facts == ServerFacts(lifetime=60.0)
    assert decode(old, 7).refresh_token == "rt_x"
    known = Entry(None, "rt_x", facts=ServerFacts(introspection_vouches=False))
    assert decode(encode(known), 1).facts.introspection_vouches is False


def test_an_entry_keeps_every_field_through_its_codec_and_old_short_keys_read() -> None:
    token = Token("at_x", "Bearer", expires_at=2e9, issued_at=2e9 - 60, scope=("a", "b"))
    facts = ServerFacts(lifetime=60.0, revokes_on_rotation=False, introspection_vouches=True)
    entry = Entry(token, "rt_x", "spending", "holder", 2e9 + 5, 3, 2e9 - 60, ("f1",), 2e9, facts)
    entry = replace(entry, failure="{}", version=9)
    assert decode(encode(entry), 9) == entry
    assert set(json.loads(encode(entry))) == {f.name for f in fields(Entry)} - {"version"}
    short = {"at": "at_x", "tt": "Bearer", "exp": 2e9, "iat": 2e9 - 60, "scope": ["a", "b"]}
    old: dict[str, Any] = {"t": short}
    old |= {"rt": "rt_x", "sp": "holder", "n": 3, "lm": 2e9 - 60, "su": 2e9 + 5, "lt": 60.0}
    old |= {"wb": False, "pr": ["f1"], "pm": -2e9, "rv": False, "iv": True}
    assert decode(json.dumps(old).encode(), 9) == replace(entry, failure=None)
    # Before phases were named, a negative promise meant closed, a flag a write-back owed.
    old |= {"sp": None, "su": 0.0}
    assert decode(json.dumps(old).encode(), 9).phase == "closing"
    old |= {"wb": True, "t": None, "pm": 0.0}
    assert decode(json.dumps(old).encode(), 9).phase == "writing_back"


def test_a_new_seed_keeps_what_was_learned_about_the_server(
    freshtoken_server: AuthServer,
) -> None:
    broker = make_broker(freshtoken_server, grant=None)
    facts = ServerFacts(lifetime=60.0, revokes_on_rotation=True, introspection_vouches=False)
    learned = Entry(None, "rt_old", facts=facts)
    assert broker.store.save(broker.key, learned, 0) is not None
    broker.seed_refresh_token("rt_new")
    entry = _entry(broker)
    assert entry.refresh_token == "rt_new"
    assert entry.facts == facts


def test_only_a_store_that_outlives_the_caller_gets_a_spender(
    tmp_path: Path, freshtoken_server: AuthServer
) -> None:
    def broker(url: str, **options: Any) -> TokenBroker:
        settings = Settings(
            token_url=freshtoken_server.token_url,
            client_id="demo-client",
            client_secret="demo-secret",  # type: ignore[arg-type]
            store=url,
        )
        return TokenBroker.from_settings(settings, grant=None, **options)

    sqlite = f"sqlite://{tmp_path / 't.db'}"
    assert broker(sqlite)._refresher.elsewhere is not None
    assert broker("memory://")._refresher.elsewhere is None  # dies with the caller anyway
    # Parts built by hand cannot be rebuilt in another process.
    assert broker(sqlite, store=SQLiteStore(tmp_path / "u.db"))._refresher.elsewhere is None


@pytest.mark.parametrize("vouches", [True, False, None])
def test_inactive_means_spent_only_from_a_server_that_vouches(
    freshtoken_server: AuthServer, vouches: bool | None
) -> None:
    """A dead holder's mark on a refresh token the server spent (its answer was lost)."""
    broker = make_broker(freshtoken_server, grant=None)
    client = make_client(freshtoken_server)
    seed = client.fetch(AuthorizationCode(freshtoken_server.issue_code("demo-client")))
    assert seed.refresh_token
    client.fetch(RefreshTokenGrant(seed.refresh_token))
    broker.seed_refresh_token(seed.refresh_token)
    entry = broker.store.load(broker.key)
    assert entry is not None
    dead = replace(
        entry,
        phase="spending",
        phase_owner="dead-holder",
        facts=replace(entry.facts, introspection_vouches=vouches, vouched_by="ClientSecretBasic"),
    )
    broker.store.save(broker.key, dead, entry.version)
    with pytest.raises(OAuthError) as info:
        broker.token()
    after = _entry(broker)
    if vouches:  # believed: dropped, and a new login is asked for
        assert isinstance(info.value, InvalidGrantError)
        assert after.refresh_token is None
    else:  # cannot tell: kept, not presented
        assert "cannot be told" in info.value.message
        assert after.refresh_token == seed.refresh_token and after.phase_owner == "dead-holder"
    stats = freshtoken_server.stats()
    assert stats["reuse_detections"] == 0 and stats["refreshes"] == 1
    assert stats["introspections"] == (0 if vouches is False else 1)


@pytest.mark.slow
@pytest.mark.parametrize(("knob", "said"), [(True, "yes"), (False, "no")])
def test_doctor_says_whether_introspection_vouches(tmp_path: Path, knob: bool, said: str) -> None:
    with AuthServer(introspect_refresh_tokens=knob) as server:
        env = cli_env(
            tmp_path,
            server,
            FRESHTOKEN_INTROSPECTION_URL=server.url + "/oauth/introspect",
            FRESHTOKEN_GRANT="refresh_token",
        )
        seed = make_client(server).fetch(AuthorizationCode(server.issue_code("demo-client")))
        assert seed.refresh_token
        assert ft(["seed-refresh-token"], env, tmp_path, stdin=seed.refresh_token).returncode == 0
        doctor = ft(["doctor"], env, tmp_path)
        assert f"introspection vouches for refresh tokens: {said}" in doctor.stdout, doctor.stdout
        assert server.stats()["refreshes"] == 1


@pytest.mark.slow
def test_an_error_from_the_spender_is_raised_as_the_class_it_was(tmp_path: Path) -> None:
    """The spender writes its error into the store and the caller raises it again: as the same
    class (and so exit code) as a refresh presented in the caller raises, also for a server's
    code that is no class's own (a 503's temporarily_unavailable is a ServerError)."""
    with AuthServer() as server:
        raised = {}
        for store in (f"sqlite://{tmp_path / 't.db'}", "memory://"):
            settings = Settings(
                token_url=server.token_url,
                client_id="demo-client",
                client_secret="demo-secret",  # type: ignore[arg-type]
                store=store,
                retry_budget=1.0,
            )
            broker = TokenBroker.from_settings(settings, grant=None)
            assert (broker._refresher.elsewhere is not None) == store.startswith("sqlite")
            _seed(broker, server, "demo-client", "demo-secret")
            server.configure(fail_first=1000)  # every token request: 503 temporarily_unavailable
            with pytest.raises(OAuthError) as caught:
                broker.token()
            server.configure(fail_first=0)
            raised[store.split(":")[0]] = (type(caught.value), caught.value.exit_code)
            broker.close()
        assert raised["sqlite"] == raised["memory"], raised
        assert raised["sqlite"][0].__name__ == "ServerError", raised
