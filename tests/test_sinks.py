"""Refresh-token sinks, each against the real thing it writes to: the GitHub-secrets stand-in
(real sealed boxes over HTTP), files on disk, real programs; and the broker's write-back order,
pending writes and seeding rules against the test server's rotating refresh tokens."""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from freshtoken import AuthorizationCode, MemoryStore, Secret, TokenBroker
from freshtoken._errors import ConfigurationError, SinkError
from freshtoken._http import Timeouts
from freshtoken.sinks import SinkOptions, open_sink
from freshtoken.sinks._base import RefreshTokenSink
from freshtoken.testing import GITHUB_TEST_TOKEN, AuthServer, GitHubSecrets
from tests.helpers import assert_no_leak, make_client

REPO = "github-secret://acme/pipeline/FT_REFRESH"
ENVIRONMENT = "github-secret://acme/pipeline/environments/prod/FT_REFRESH"
ORG = "github-secret://orgs/acme/FT_REFRESH"


@pytest.fixture
def github() -> Iterator[GitHubSecrets]:
    with GitHubSecrets() as stand_in:
        yield stand_in


def github_sink(
    github: GitHubSecrets, url: str = REPO, token: str = GITHUB_TEST_TOKEN
) -> RefreshTokenSink:
    options = SinkOptions(
        github_token=Secret(token), github_api_url=github.url, timeouts=Timeouts(1.0, 1.0)
    )
    return open_sink(url, options)


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


def login(server: AuthServer) -> str:
    """A refresh token as a one-time login gives it."""
    token = make_client(server).fetch(AuthorizationCode(server.issue_code("demo-client")))
    assert token.refresh_token
    return token.refresh_token


# -- github-secret -------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [REPO, ENVIRONMENT, ORG])
def test_github_secret_is_sealed_for_the_stand_in_and_dated(
    github: GitHubSecrets, url: str
) -> None:
    sink = github_sink(github, url)
    assert sink.last_written(soon()) is None  # never written yet
    before = time.time()
    sink.write("rt_first-value", soon())
    sink.write("rt_second-value", soon())
    assert github.value(url) == "rt_second-value"  # decrypted with the stand-in's private key
    assert github.counts["puts"] == 2
    written = sink.last_written(soon())
    assert written is not None and before - 1 <= written <= time.time() + 1
    assert sink.read() is None  # GitHub never gives a value back
    record = github.record(url)
    assert record is not None
    assert record.visibility == ("private" if url == ORG else None)


def test_an_org_secret_keeps_its_visibility(github: GitHubSecrets) -> None:
    github.set_value(ORG, "old", visibility="all")
    github_sink(github, ORG).write("rt_new-value", soon())
    record = github.record(ORG)
    assert record is not None and (record.value, record.visibility) == ("rt_new-value", "all")


def test_a_wrong_github_token_is_named_and_explained(github: GitHubSecrets) -> None:
    sink = github_sink(github, token="github_pat_wrong_canary_1234")
    with pytest.raises(SinkError) as caught:
        sink.prepare(soon())
    text = str(caught.value)
    assert "FRESHTOKEN_GITHUB_TOKEN" in text and "HTTP 401" in text
    assert "GITHUB_TOKEN can never write secrets" in caught.value.hint
    assert_no_leak("the error", text, "github_pat_wrong_canary_1234", GITHUB_TEST_TOKEN)


def test_a_token_without_write_permission_gets_403_explained(github: GitHubSecrets) -> None:
    github.configure(forbidden=True)
    sink = github_sink(github)
    sink.prepare(soon())  # reading the public key is allowed
    with pytest.raises(SinkError) as caught:
        sink.write("rt_value-never-stored", soon())
    assert "HTTP 403" in str(caught.value) and "Secrets: Read and write" in caught.value.hint
    assert github.value(REPO) is None


def test_server_errors_are_retried_within_the_deadline(github: GitHubSecrets) -> None:
    github.configure(fail_next=3)
    github_sink(github).write("rt_after-retries", soon())
    assert github.value(REPO) == "rt_after-retries"
    assert github.counts["requests"] >= 5  # 3 refused, the key, the PUT


@pytest.mark.slow
@pytest.mark.parametrize("style", ["secondary", "primary", "429"])
def test_a_github_rate_limit_is_waited_out_within_the_deadline(
    github: GitHubSecrets, style: str
) -> None:
    github.configure(rate_limited_next=1, rate_limit_style=style, rate_limit_wait=1.0)
    github_sink(github).write("rt_after-the-limit", soon(10))
    assert github.value(REPO) == "rt_after-the-limit"  # before: a permission error (403)
    assert github.counts["rate_limited"] == 1


@pytest.mark.parametrize("style", ["secondary", "primary", "429"])
def test_a_github_rate_limit_past_the_deadline_is_named_a_rate_limit(
    github: GitHubSecrets, style: str
) -> None:
    github.configure(rate_limited_next=1, rate_limit_style=style, rate_limit_wait=600.0)
    started = time.monotonic()
    with pytest.raises(SinkError) as caught:
        github_sink(github).write("rt_never-stored", soon(2))
    assert time.monotonic() - started < 2.0  # no wait that would end past the deadline
    assert "rate-limiting" in str(caught.value) and "permission" not in str(caught.value)
    assert "Secrets: Read and write" not in caught.value.hint
    assert caught.value.retry_after is not None and caught.value.retry_after > 500


def test_a_slow_github_fails_at_the_deadline(github: GitHubSecrets) -> None:
    github.configure(latency=3.0)
    sink = github_sink(github)
    started = time.monotonic()
    with pytest.raises(SinkError) as caught:
        sink.write("rt_too-slow", soon(0.5))
    assert time.monotonic() - started < 2.0
    assert "in time" in str(caught.value) or "attempt" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "github-secret://acme/FT_REFRESH",
        "github-secret://acme/pipeline/GITHUB_TOKEN",
        "github-secret://acme/pipeline/1BAD",
        "github-secret://acme/pipeline/FT?visibility=all",  # only organisation secrets have one
        "github-secret://orgs/acme/FT?visibility=public",
        "vault://secret/ci",
    ],
)
def test_malformed_sink_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        open_sink(url, SinkOptions(github_token=Secret("x" * 20)))


def test_github_sink_needs_a_token() -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_sink(REPO, SinkOptions())
    assert "FRESHTOKEN_GITHUB_TOKEN" in str(caught.value)


# -- file ----------------------------------------------------------------------------------------


def test_file_sink_writes_0600_by_atomic_replace(tmp_path: Path) -> None:
    path = tmp_path / "refresh_token"
    sink = open_sink(path.as_uri(), SinkOptions())
    assert sink.read() is None and sink.last_written(soon()) is None
    sink.write("rt_one", soon())
    first = path.stat()
    sink.write("rt_two", soon())
    second = path.stat()
    assert stat.S_IMODE(second.st_mode) == 0o600
    assert path.read_text() == "rt_two\n" and sink.read() == "rt_two"
    assert first.st_ino != second.st_ino  # a new file renamed into place, never rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["refresh_token"]  # no temp left
    assert sink.last_written(soon()) == second.st_mtime


def test_file_sink_refuses_a_planted_symlink(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    (tmp_path / "refresh_token").symlink_to(target)
    sink = open_sink((tmp_path / "refresh_token").as_uri(), SinkOptions())
    with pytest.raises(ConfigurationError, match="symbolic link"):
        sink.write("rt_x", soon())
    with pytest.raises(ConfigurationError, match="symbolic link"):
        sink.read()
    assert target.read_text() == "keep me\n"


def test_file_sink_refuses_a_file_others_may_read(tmp_path: Path) -> None:
    path = tmp_path / "refresh_token"
    path.write_text("rt_from-a-careless-echo\n")
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        open_sink(path.as_uri(), SinkOptions()).read()


def test_file_sink_refuses_a_directory_others_may_write(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    sink = open_sink((shared / "refresh_token").as_uri(), SinkOptions())
    with pytest.raises(ConfigurationError, match="other users may write"):
        sink.prepare(soon())


# -- command -------------------------------------------------------------------------------------

RECORDER = """
import os, sys
token = sys.stdin.read()
open(sys.argv[1], "w").write(token)
open(sys.argv[1] + ".argv", "w").write(repr(sys.argv) + repr(dict(os.environ)))
"""


def test_command_sink_gets_the_token_on_stdin_only(tmp_path: Path) -> None:
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    out = tmp_path / "stored"
    environ = {**os.environ, "FRESHTOKEN_CLIENT_SECRET": "canary-secret-5f1e9d2b7c"}
    sink = open_sink(f"command:{sys.executable} {script} {out}", SinkOptions(environ=environ))
    sink.write("rt_via-stdin-only", soon())
    assert out.read_text() == "rt_via-stdin-only\n"
    seen = (tmp_path / "stored.argv").read_text()
    assert "rt_via-stdin-only" not in seen  # not in its arguments nor its environment
    assert "canary-secret-5f1e9d2b7c" not in seen  # freshtoken's secrets are not its business


def test_a_failing_command_fails_clearly_without_echoing_the_token(tmp_path: Path) -> None:
    script = tmp_path / "fail.py"
    script.write_text(
        "import sys\ntoken = sys.stdin.read().strip()\n"
        "print('stdout says', token)\n"
        "print('vault: permission denied for', token, file=sys.stderr)\nsys.exit(3)\n"
    )
    sink = open_sink(f"command:{sys.executable} {script}", SinkOptions())
    with pytest.raises(SinkError) as caught:
        sink.write("rt_must-not-appear-anywhere", soon())
    text = str(caught.value)
    assert "exited with code 3" in text and "permission denied" in text
    assert_no_leak("the error", text, "rt_must-not-appear-anywhere")


def test_a_missing_program_is_refused_before_anything_is_spent() -> None:
    sink = open_sink("command:/nonexistent/vault kv put x", SinkOptions())
    with pytest.raises(ConfigurationError, match="not found"):
        sink.prepare(soon())


# -- the broker: write-back order, pending writes, seeds ----------------------------------------

FLAKY = """
import os, sys
token = sys.stdin.read()
if os.path.exists(sys.argv[2]):
    sys.exit(1)
open(sys.argv[1], "w").write(token.strip())
"""


def test_a_failed_write_back_keeps_the_new_token_pending_and_the_next_call_writes_it(
    server: AuthServer, tmp_path: Path
) -> None:
    script, stored, broken = tmp_path / "flaky.py", tmp_path / "stored", tmp_path / "broken"
    script.write_text(FLAKY)
    sink = open_sink(f"command:{sys.executable} {script} {stored} {broken}", SinkOptions())
    store = MemoryStore()
    broker = TokenBroker(make_client(server), grant=None, store=store, sink=sink)
    broker.seed_refresh_token(login(server))
    broken.touch()
    with pytest.raises(SinkError):
        broker.token()
    entry = store.load(broker.key)
    assert entry is not None and entry.phase == "writing_back" and entry.token is None
    assert server.active_refresh_tokens("demo-client") == 1  # the new one, held by the store
    pending = entry.refresh_token
    broken.unlink()
    broker.token()  # writes the pending one first, then refreshes and writes again
    assert server.stats()["reuse_detections"] == 0
    entry = store.load(broker.key)
    assert entry is not None and entry.phase != "writing_back"
    assert stored.read_text() == entry.refresh_token != pending
    assert server.active_refresh_tokens("demo-client") == 1


def test_a_sink_that_cannot_work_costs_no_refresh_token(
    server: AuthServer, github: GitHubSecrets
) -> None:
    sink = github_sink(github, token="github_pat_wrong_canary_1234")
    broker = TokenBroker(make_client(server), grant=None, store=MemoryStore(), sink=sink)
    broker.seed_refresh_token(login(server))
    with pytest.raises(SinkError):
        broker.token()
    assert server.stats()["refreshes"] == 0  # the seed was never presented: still good


def test_the_sink_holds_the_new_token_before_it_is_handed_out(
    server: AuthServer, github: GitHubSecrets
) -> None:
    broker = TokenBroker(
        make_client(server), grant=None, store=MemoryStore(), sink=github_sink(github)
    )
    broker.seed_refresh_token(login(server))
    for _ in range(3):
        broker.token()
        entry = broker.store.load(broker.key)
        assert entry is not None and github.value(REPO) == entry.refresh_token
        broker.invalidate(broker.token())  # the next call refreshes
    assert server.active_refresh_tokens("demo-client") == 1


def test_a_seed_older_than_the_stores_token_is_ignored(server: AuthServer) -> None:
    broker = TokenBroker(make_client(server), grant=None, store=MemoryStore())
    first = login(server)
    assert broker.offer_refresh_token(first)
    assert not broker.offer_refresh_token(first)  # held already
    broker.token()  # rotates: first is spent
    for _ in range(3):  # a job's later steps see the job's first secret value again
        assert not broker.offer_refresh_token(first)
        broker.invalidate(broker.token())
    assert server.stats()["reuse_detections"] == 0
    fresh = login(server)  # a new login is a new seed
    assert broker.offer_refresh_token(fresh)
    entry = broker.store.load(broker.key)
    assert entry is not None and entry.refresh_token == fresh


# -- the entry's new fields (pure logic) ---------------------------------------------------------


def test_entry_fields_round_trip_and_past_is_bounded() -> None:
    from freshtoken.stores._entry import PAST_KEPT, Entry, decode, encode, fingerprint, with_past

    past: tuple[str, ...] = ()
    for n in range(PAST_KEPT + 10):
        past = with_past(past, f"rt_{n:04d}", f"rt_{n + 1:04d}")
    assert len(past) == PAST_KEPT
    assert past[0] == fingerprint("rt_0000")  # the chain's first seed stays known
    assert past[-1] == fingerprint(f"rt_{PAST_KEPT + 9:04d}")
    assert with_past(past, "rt_same", "rt_same") == past
    entry = Entry(None, "rt_x", "writing_back", past=past)
    back = decode(encode(entry), 7)
    assert (back.phase, back.past, back.version) == ("writing_back", past, 7)
    assert all("rt_" not in mark for mark in back.past)  # fingerprints, not tokens
