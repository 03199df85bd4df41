"""Break each promise on purpose, one at a time, in a scratch copy, and see which test catches it.

    scripts/mutants.sh                 # every mutant
    scripts/mutants.sh sealing lock    # those whose name contains one of these words

A mutant replaces one exact text (every occurrence) in one file of a scratch copy of this
working tree (its tracked and untracked files; never the tree itself), then runs there, under
CI=true, the tests that guard that promise (-x, with a timeout). "caught": a test failed (the
first one is named); "MISSED": they all passed; "error": the text was not found, or the run
timed out. Not part of CI: run it before resolving an issue that changes a promise
(docs/mutants.md). A missed mutant needs a test that catches it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = float(os.environ.get("MUTANT_TIMEOUT", "900"))


@dataclass(frozen=True)
class Mutant:
    name: str
    promise: str
    path: str
    text: str
    replacement: str
    tests: tuple[str, ...]


B = "src/freshtoken/broker/"
S = "src/freshtoken/stores/"
MUTANTS = [
    Mutant(
        "reload-under-lock",
        "single flight: the lock holder re-reads the store (the one before may have minted)",
        B + "_renewal.py",
        "entry = cache.store.load(cache.key)  # the holder before us may have minted",
        "entry = None  # mutant: no reload under the lock (decided on nothing stored)",
        ("tests/test_broker.py", "tests/test_processes.py"),
    ),
    Mutant(
        "min-ttl-hot-path",
        "min_ttl: a cached token is handed out only with min_ttl left",
        B + "_broker.py",
        "(default_min_ttl if min_ttl is None else min_ttl) >= 0",
        "default_min_ttl >= 0",
        ("tests/test_broker.py", "tests/test_promises.py"),
    ),
    Mutant(
        "min-ttl-policy",
        "min_ttl: a caller's min_ttl, not the default, decides what is handed out",
        "src/freshtoken/_token.py",
        "        if min_ttl is not None:\n            return min_ttl\n",
        "",
        ("tests/test_broker.py", "tests/test_promises.py"),
    ),
    Mutant(
        "min-ttl-cli-hit",
        "min_ttl: the command line's store hit prints a token only with --min-ttl left",
        "src/freshtoken/cli/_token_store.py",
        "policy.servable(token, now, min_ttl)",
        "policy.servable(token, now, None)",
        ("tests/test_cli.py",),
    ),
    Mutant(
        "refresh-window",
        "the refresh window: refresh a quarter of the lifetime (at least 30 s) before expiry",
        "src/freshtoken/_token.py",
        "return min(max(self.floor, self.fraction * lifetime), self.max_fraction * lifetime)",
        "return 0.0",
        ("tests/test_broker.py", "tests/test_cli.py"),
    ),
    Mutant(
        "spend-mark",
        "the spend mark: a refresh token is marked as being spent before it is presented",
        B + "_refresh.py",
        "                phase=SPENDING,\n",
        "",
        ("tests/test_spender.py", "tests/test_refresh_ci.py"),
    ),
    Mutant(
        "lost-lock-presents",
        "a holder whose lease ran out does not present the refresh token",
        B + "_refresh.py",
        "        if not held.locked():\n            # Our lease",
        "        if False:\n            # Our lease",
        ("tests/test_redis.py",),
    ),
    Mutant(
        "sink-write",
        "sink write-back: a rotated refresh token is written to its sink before use",
        B + "_refresh.py",
        "            self.sink.write(refresh, held.deadline)\n",
        "            pass\n",
        ("tests/test_sinks.py",),
    ),
    Mutant(
        "sink-pending",
        "sink write-back: a failed write is kept pending and written first next time",
        B + "_refresh.py",
        "refresh_token=refresh, phase=WRITING_BACK)",
        "refresh_token=refresh, phase=IDLE)",
        ("tests/test_sinks.py", "tests/test_refresh_ci.py"),
    ),
    Mutant(
        "unbind-sealing",
        "store key binding: an entry opens only under the cache key it was sealed for",
        S + "_entry.py",
        "cache_key.encode())",
        'b"")',
        ("tests/test_store_contract.py", "tests/test_security_store.py"),
    ),
    Mutant(
        "sqlite-cas",
        "compare-and-set: SQLite writes only over the expected version",
        S + "_sqlite.py",
        "WHERE key = ? AND version = ?",
        "WHERE key = ? AND (version = ? OR 1)",
        ("tests/test_store_contract.py",),
    ),
    Mutant(
        "redis-cas",
        "compare-and-set: Redis writes only over the expected version",
        S + "_redis.py",
        "if current ~= ARGV[1] then return false end",
        "",
        ("tests/test_store_contract.py",),
    ),
    Mutant(
        "redis-release-others-lock",
        "lock ownership: a holder whose lease ran out never releases its successor's lock",
        S + "_redis.py",
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end",
        "if true then return redis.call('DEL', KEYS[1]) end",
        ("tests/test_store_contract.py", "tests/test_redis.py"),
    ),
    Mutant(
        "401-no-invalidate",
        "the 401 rule: a refused token is invalidated before the one retry",
        "src/freshtoken/auth/_retry401.py",
        "self.source.invalidate(refused)",
        "pass",
        ("tests/test_broker.py", "tests/test_serve.py"),
    ),
    Mutant(
        "log-redaction",
        "log redaction: no known secret leaves through logging or an error message",
        "src/freshtoken/_log.py",
        'text = text.replace(value, "***")',
        "pass",
        ("tests/test_secrets.py", "tests/test_security_output.py"),
    ),
    Mutant(
        "add-mask",
        "::add-mask::: on GitHub a token is masked before it is printed",
        "src/freshtoken/cli/_token.py",
        'sys.stdout.write(f"::add-mask::{access}\\n")',
        "pass",
        ("tests/test_cli.py", "tests/test_security_output.py"),
    ),
    Mutant(
        "deadline-watchdog",
        "the deadline watchdog: a server that drips bytes cannot hold a call past its deadline",
        "src/freshtoken/_http.py",
        "watchdog = threading.Timer(remaining, http.close)",
        "watchdog = threading.Timer(remaining, lambda: None)",
        ("tests/test_faults.py",),
    ),
    Mutant(
        "no-store-lock",
        "single flight: one process per store mints (the store's lock)",
        B + "_renewal.py",
        "with cache.store.lock(cache.key, wait) as held:",
        "with contextlib.nullcontext(True) as held:",
        ("tests/test_processes.py",),
    ),
    Mutant(
        "sqlite-flock",
        "the lock is exclusive: SQLite's per-key flock",
        S + "_sqlite.py",
        "if try_lock(fd):",
        "if True:",
        ("tests/test_store_contract.py",),
    ),
    Mutant(
        "redis-lease-not-renewed",
        "a live holder keeps its Redis lock however long its mint takes (the lease is renewed)",
        S + "_redis.py",
        "while not stop.wait(self.lease / 3):",
        "while not stop.wait(self.lease * 3):",
        ("tests/test_redis.py", "tests/test_store.py"),
    ),
    Mutant(
        "spend-window",
        "the spend mark says until when the server may still be processing the attempt",
        B + "_refresh.py",
        "until = clock.time() + (attempt_deadline - now) + timeouts.read",
        "until = 0.0",
        ("tests/test_spender.py", "tests/test_refresh_ci.py"),
    ),
    Mutant(
        "min-ttl-fresh-mint",
        "min_ttl: a fresh token shorter than asked for is an error, never a success",
        B + "_shared.py",
        "        if left < need:",
        "        if False:",
        ("tests/test_broker.py", "tests/test_faults.py"),
    ),
    Mutant(
        "401-retried-twice",
        "the 401 rule: a request is sent again once, a second 401 goes back to the caller",
        "src/freshtoken/auth/_retry401.py",
        "if status != 401 or self.retried or",
        "if status != 401 or",
        ("tests/test_broker.py", "tests/test_serve.py"),
    ),
    Mutant(
        "log-filter",
        "log redaction: the logging filter rewrites every record",
        "src/freshtoken/_log.py",
        "record.msg = redact(message)",
        "record.msg = message",
        ("tests/test_secrets.py", "tests/test_security_output.py"),
    ),
    Mutant(
        "add-mask-stderr",
        "::add-mask::: on GitHub a token is masked before it is printed (the shared helper)",
        "src/freshtoken/cli/_formats.py",
        '    sys.stderr.write(f"::add-mask::{secret}\\n")',
        "    pass",
        ("tests/test_cli.py", "tests/test_security_output.py", "tests/test_action.py"),
    ),
    Mutant(
        "add-mask-login",
        "::add-mask::: a refresh token printed by a login on GitHub is masked first",
        "src/freshtoken/cli/_login.py",
        "    mask_on_github(token.refresh_token)",
        "    pass",
        ("tests/test_login.py", "tests/test_security_output.py"),
    ),
    Mutant(
        "deadline-cap",
        "the deadline: a request's timeouts are capped by what is left of the call's budget",
        "src/freshtoken/_http.py",
        "_capped(http.timeout, remaining)",
        "http.timeout",
        ("tests/test_faults.py",),
    ),
]


def scratch_copy() -> Path:
    """This working tree's tracked and untracked (not ignored) files, in a new directory."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    scratch = Path(tempfile.mkdtemp(prefix="freshtoken-mutant-"))
    for raw in listed:
        name = raw.decode()
        source = ROOT / name
        if name and source.is_file():
            (scratch / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, scratch / name)
    return scratch


def first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" ", 1)[1].split(" - ", 1)[0]
    return "?"


def run(mutant: Mutant) -> tuple[str, str, float]:
    """The outcome ("caught", "MISSED", "error"), what says so, and the seconds it took."""
    scratch = scratch_copy()
    started = time.monotonic()
    try:
        target = scratch / mutant.path
        text = target.read_text()
        if mutant.text not in text:
            return "error", "text not found", 0.0
        target.write_text(text.replace(mutant.text, mutant.replacement))
        env = {**os.environ, "CI": "true", "PYTHONPATH": str(scratch / "src")}
        where = subprocess.run(
            [sys.executable, "-c", "import freshtoken; print(freshtoken.__file__)"],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if not where.startswith(str(scratch)):  # the tests would run the unbroken code
            return "error", f"freshtoken imported from {where.strip()}", 0.0
        # In one process (-x then exits 1, not xdist's 2), the slow tier included (-m "").
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-n", "0", "-m", ""]
        proc = subprocess.Popen(
            [*command, *mutant.tests],
            cwd=scratch,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its redis-servers and workers go with it on a timeout
        )
        try:
            output, _ = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return "error", f"timed out after {TIMEOUT:g}s", time.monotonic() - started
        took = time.monotonic() - started
        if proc.returncode == 0:
            return "MISSED", "every test passed", took
        if proc.returncode != 1:  # 1: a test failed; anything else is not a verdict
            return "error", f"pytest exited {proc.returncode}", took
        return "caught", first_failure(output), took
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(words: list[str]) -> int:
    chosen = [m for m in MUTANTS if not words or any(w in m.name for w in words)]
    missed = 0
    print(f"{'mutant':28} {'result':7} {'secs':>5}  first failing test (or why not)", flush=True)
    for mutant in chosen:
        outcome, detail, took = run(mutant)
        missed += outcome != "caught"
        print(f"{mutant.name:28} {outcome:7} {took:5.0f}  {detail}", flush=True)
    print(f"{len(chosen) - missed} of {len(chosen)} caught", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
