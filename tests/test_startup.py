"""What `freshtoken token` loads on a store hit: only what a hit uses. Not timed (the time of a
whole process is `scripts/bench.sh --startup`'s, in instructions); the module list is exact."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from freshtoken.testing import AuthServer
from tests._cli import BIN, cli_env, ft

#: Modules a store hit must not load: the HTTP stack (a hit sends nothing), the command line's
#: other commands and its renderer, the sink's sealed boxes, the broker (a hit builds none),
#: cryptography's Python layers (key serialization for private_key_jwt, the cipher registry),
#: logging (a hit logs nothing at the default level), and dataclasses (inspect, and an exec per
#: class: the value classes are records, freshtoken/_record.py), and platformdirs (the XDG
#: directories are read directly on Linux); threading (its Lock is _thread's), string (a regular
#: expression compiled at import), base64 (binascii's calls, which it wraps), pathlib (paths are
#: strings for os.path) and hashlib (SHA-256 is cryptography's).
HEAVY = (
    "_hashlib",  # the system's OpenSSL: keyed hashes use cryptography's (_secret.keyed_hash)
    "_socket",  # no endpoint asked
    "secrets",  # nothing written
    "signal",
    "platformdirs",
    "logging",
    "dataclasses",
    "inspect",
    "httpx",
    "click",
    "rich",
    "nacl",
    "redis",
    "freshtoken.cli._app",
    "freshtoken.broker._broker",
    "freshtoken.oauth._client",
    "freshtoken.oauth._jws",
    "freshtoken.oauth._jwt_auth",
    "cryptography.hazmat.primitives.serialization",
    "cryptography.hazmat.primitives.ciphers",
    "cryptography.exceptions",
    "threading",
    "string",
    "base64",
    "pathlib",
    "hashlib",
    "freshtoken._hints",  # the hint catalog: a hit explains no error
    "freshtoken.provider._regions",  # a client configured by its URLs reads no region table
    "freshtoken.stores._memory",  # the stand-in for a shared store that fails
)
#: What -v may load besides: logging, and what logging imports.
VERBOSE = {"logging", "threading", "string"}


def _loaded(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[str, str, set[str]]:
    """Standard output and error of `argv` run with -X importtime, and every module imported."""
    out = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in out.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "freshtoken.cli._token" in modules  # the list is the command's, not empty
    return out.stdout, out.stderr, modules


@pytest.mark.parametrize(
    "spelling",
    [
        ["token"],
        ["-q", "token", "--min-ttl", "60"],
        ["token", "--format", "json"],
        ["--color", "never", "-vv", "token", "--min-ttl=60"],
        ["--verbose", "--color=auto", "token"],
    ],
)
def test_a_store_hit_loads_nothing_heavy(tmp_path: Path, spelling: list[str]) -> None:
    verbose = any(arg.startswith(("-v", "--verbose")) for arg in spelling)
    with AuthServer() as server:
        env = cli_env(tmp_path, server, FRESHTOKEN_STORE=f"sqlite://{tmp_path}/t.db")
        first = ft(["token"], env, tmp_path)
        assert first.returncode == 0, first.stderr
        for argv in (
            [sys.executable, "-X", "importtime", "-m", "freshtoken", *spelling],
            [sys.executable, "-X", "importtime", str(Path(BIN) / "freshtoken"), *spelling],
        ):
            stdout, stderr, modules = _loaded(argv, env, tmp_path)
            assert first.stdout.strip() in stdout  # the stored token, printed
            # -v shows the hit's record (so it loads logging), through the same path
            assert ("adopted a token another holder stored" in stderr) == verbose
            allowed = VERBOSE if verbose else set()
            heavy = sorted(
                m
                for m in modules
                if any(m == h or m.startswith(h + ".") for h in HEAVY if h not in allowed)
            )
            assert heavy == [], f"{argv[3:]} loaded {heavy}"
        assert server.stats()["tokens_minted"] == 1  # every run was a hit


def test_the_store_seals_with_cryptographys_public_aesgcm() -> None:
    # The store takes AESGCM from the binding (its public module's package costs a hit 52 M
    # instructions); this fails if cryptography ever serves another class under that name.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from freshtoken.stores._entry import Envelope

    assert type(Envelope(bytes(32))._aead) is AESGCM


def test_logging_set_up_after_freshtoken_still_gets_records_redacted() -> None:
    # The logger is built at the first record shown: a program that imports freshtoken first
    # and configures logging afterwards gets every record, filtered (and nothing below WARNING
    # when it configures nothing).
    code = (
        "import sys; from freshtoken._log import logger; from freshtoken._secret import Secret; "
        "Secret('canary-late-42424242'); logger.info('unseen %s', 1); "
        "import logging; logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, "
        "format='%(module)s %(message)s'); logger.info('sent %s', 'canary-late-42424242')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["<string> sent ***"]
    assert out.stderr == ""


def test_the_keyed_hash_is_hmac_sha256() -> None:
    # Cache keys and the store key's pepper are this hash: a different one would orphan every
    # stored entry (and a weaker one would reveal more).
    import hashlib
    import hmac

    from freshtoken._secret import keyed_hash

    for key, message in ((b"k" * 32, b"freshtoken cache-key v1"), (b"", b""), (b"x" * 99, b"m")):
        assert keyed_hash(key, message) == hmac.new(key, message, hashlib.sha256).digest()


def test_a_store_hit_compiles_no_source(tmp_path: Path) -> None:
    # No `compile()` on freshtoken's behalf at run time (typing.NamedTuple compiles each string
    # annotation: 10 M instructions), watched through the interpreter's audit events; the
    # standard library's own (urllib.parse's named tuples) are the floor's, not counted.
    code = """if True:
        import sys
        seen = []
        LIBRARY = ("/typing.py", "/collections/__init__.py", "<string>")
        def hook(event, args):
            if event != "compile" or str(args[1]).endswith(".py"):
                return
            frame = sys._getframe(1)
            while (name := frame.f_code.co_filename).endswith(LIBRARY) or name[:7] == "<frozen":
                frame = frame.f_back
            if "/freshtoken/" in name:
                seen.append(f"{name}:{frame.f_lineno}")
        sys.addaudithook(hook)
        sys.argv = ["freshtoken", "token"]
        from freshtoken.cli._main import main
        main()
        sys.stderr.write(f"compiled: {seen}")
    """
    with AuthServer() as server:
        env = cli_env(tmp_path, server, FRESHTOKEN_STORE=f"sqlite://{tmp_path}/t.db")
        assert ft(["token"], env, tmp_path).returncode == 0
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert out.stderr.endswith("compiled: []")
        assert server.stats()["tokens_minted"] == 1


def test_base64_by_binascii_is_base64() -> None:
    # The store key and the Basic header are read and written with binascii's calls, as the
    # base64 module makes them: the same bytes, and the same refusals.
    import base64
    import binascii

    from freshtoken._errors import ConfigurationError
    from freshtoken._secret import Secret
    from freshtoken.oauth._client_auth import _basic
    from freshtoken.stores._base import parse_key

    key = bytes(range(32))
    good = base64.b64encode(key).decode()
    assert parse_key(Secret(good), "K") == key
    for bad in (good[:-1], good + "=", good[:-1] + "*", " " + good, good + "\n", good[:-1] + "é",
                good.replace("=", "A"), "", "AAAA" * 11 + "A=="):  # fmt: skip
        try:
            base64.b64decode(bad, validate=True)
            refused = False
        except (binascii.Error, ValueError):
            refused = True
        if refused or len(base64.b64decode(bad, validate=True)) != 32:
            with pytest.raises(ConfigurationError):
                parse_key(Secret(bad), "K")
    secret = Secret("s3cr:t é+/")
    expected = base64.b64encode(b"id%3A1:s3cr%3At+%C3%A9%2B%2F").decode()
    assert _basic("id:1", secret) == expected


def test_the_fingerprint_is_sha256_without_hashlib() -> None:
    # The ledger fingerprints the refresh token of every store hit: the same SHA-256 as
    # before (stored ledgers and entries hold it), without loading the system's OpenSSL.
    import hashlib

    from freshtoken.stores._entry import fingerprint

    for value in ("rt-1", "", "é\udc80" * 50):
        raw = value.encode("utf-8", "surrogatepass")
        assert fingerprint(value) == hashlib.sha256(raw).hexdigest()[:24]
    code = (
        "import sys; from freshtoken.stores._entry import fingerprint; fingerprint('rt'); "
        "print(sorted(m for m in ('_hashlib', 'hashlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_hit_on_the_default_store_loads_nothing_heavy(tmp_path: Path) -> None:
    # No FRESHTOKEN_STORE: the default SQLite file (in the XDG cache directory) is opened by its
    # path, as a named one is, without pathlib.
    with AuthServer() as server:
        env = cli_env(tmp_path, server)
        first = ft(["token"], env, tmp_path)
        assert first.returncode == 0, first.stderr
        argv = [sys.executable, "-X", "importtime", "-m", "freshtoken", "token"]
        stdout, _, modules = _loaded(argv, env, tmp_path)
        assert stdout.strip() == first.stdout.strip()
        heavy = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
        assert heavy == []
        assert (tmp_path / "cache" / "freshtoken" / "tokens.db").is_file()
        assert server.stats()["tokens_minted"] == 1


def test_a_step_asking_the_endpoint_loads_no_typing_nor_the_store(tmp_path: Path) -> None:
    # A step after `serve` gets its token from the endpoint: the store's side of the command
    # (cli/_token_store.py, its settings and type names, `typing`) is not loaded at all.
    from tests.test_endpoint_step import Served

    with AuthServer() as server:
        served = Served(server, tmp_path)
        try:
            argv = [sys.executable, "-X", "importtime", "-m", "freshtoken", "token"]
            out = subprocess.run(
                argv, env=served.step_env, cwd=tmp_path, capture_output=True, text=True
            )
            assert out.returncode == 0, out.stderr
            assert out.stdout.strip() == served.held()
            modules = {
                line.rsplit("|", 1)[1].strip()
                for line in out.stderr.splitlines()
                if line.startswith("import time:") and "|" in line
            }
            assert "freshtoken._local_endpoint" in modules
            cold = (
                "typing",
                "freshtoken.cli._token_store",
                "freshtoken.config",
                "freshtoken.stores",
            )
            assert sorted(m for m in modules if m.startswith(cold)) == []
        finally:
            served.stop()
        assert server.stats()["tokens_minted"] == 1  # by serve
