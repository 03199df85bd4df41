"""Start-up cost of `freshtoken token`, counted in instructions (valgrind's callgrind).

Wall time of a 40-ms process varies 2x on a shared machine; the instruction count of the same
run varies by well under 1 %, so the ratio to `python -c pass` is what this table reports (the
same interpreter, the same environment). `scripts/bench.sh --startup` prints it.

Rows: the bare interpreter; the interpreter importing only what a store hit cannot do without
(the AES-GCM binding, SQLite, HMAC), which is the floor; and `freshtoken token` on a SQLite
store hit through every spelling a user may type, and from a running endpoint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

import freshtoken
from freshtoken.testing import AuthServer

console = Console(width=110)

_BINDING = "from cryptography.hazmat.bindings._rust import openssl"
_HMAC = "from cryptography.hazmat.primitives import hashes, hmac"

#: What a store hit cannot avoid, imported alone: pip's launcher (`import re`), the AES-GCM
#: binding of `cryptography`, SQLite, and the keyed hash of the cache key: the standard library's
#: (which loads a second OpenSSL) or cryptography's (dearer alone, as it imports `typing`; the
#: cheaper one next to the hit's own modules, which import `typing` anyway).
FLOOR = {
    "import re (pip's console-script launcher)": "import re",
    "import the AES-GCM binding alone": _BINDING,
    "import cryptography's AESGCM (public module)": (
        "from cryptography.hazmat.primitives.ciphers.aead import AESGCM"
    ),
    "import sqlite3": "import sqlite3",
    "import hmac, hashlib (standard library)": "import hmac, hashlib",
    "floor: re, the binding, sqlite3, hmac": f"import re, sqlite3, hmac\n{_BINDING}",
    "the same, cryptography's HMAC for hmac": f"import re, sqlite3\n{_BINDING}\n{_HMAC}",
    "floor without the launcher's re (python -m)": f"import sqlite3, hmac\n{_BINDING}",
}


def instructions(argv: list[str], env: dict[str, str]) -> int:
    """Instructions the whole process `argv` executes (callgrind's total), checked to exit 0."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if run.returncode != 0:
            raise SystemExit(f"{argv[1:]} failed under valgrind:\n{run.stderr[-2000:]}")
        found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
        if found is None:
            raise SystemExit(f"no instruction total in callgrind's output for {argv[1:]}")
        return int(found.group(1))


def startup() -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: apt-get install -y valgrind")
    python = sys.executable
    cli = str(Path(python).parent / "freshtoken")
    # As an installed wheel: bytecode compiled once (an editable install under
    # PYTHONDONTWRITEBYTECODE would otherwise compile every module on every run).
    subprocess.run(
        [python, "-m", "compileall", "-q", str(Path(freshtoken.__file__).parent)], check=True
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("FRESHTOKEN_")}
    with AuthServer(ttl=3600) as server, tempfile.TemporaryDirectory() as tmp:
        hit = {
            **base,
            "FRESHTOKEN_TOKEN_URL": server.token_url,
            "FRESHTOKEN_CLIENT_ID": "demo-client",
            "FRESHTOKEN_CLIENT_SECRET": "demo-secret",
            "FRESHTOKEN_STORE": f"sqlite://{tmp}/t.db",
        }
        subprocess.run([cli, "token"], env=hit, check=True, stdout=subprocess.DEVNULL)
        serve = subprocess.Popen([cli, "-q", "serve"], env=hit, stdout=subprocess.PIPE, text=True)
        try:
            assert serve.stdout is not None
            ready = json.loads(serve.stdout.readline())
            step = {**base, "FRESHTOKEN_URL": ready["url"]}
            step["FRESHTOKEN_KEY"] = Path(ready["key_file"]).read_text()
            minted = server.stats()["tokens_minted"]
            rows = _rows(python, cli, base, hit, step)
            if server.stats()["tokens_minted"] != minted:
                raise SystemExit("a measured run minted a token: the rows are not cache hits")
        finally:
            serve.terminate()
            serve.wait(timeout=10)
    table = Table(title="a whole process, instructions counted by callgrind")
    for column in ("command", "M instructions", "x python -c pass"):
        table.add_column(column, justify="right" if column != "command" else "left")
    bare = rows[0][1]
    for label, count in rows:
        table.add_row(label, f"{count / 1e6:.1f}", f"{count / bare:.2f}x")
    console.print(table)


def _rows(
    python: str, cli: str, base: dict[str, str], hit: dict[str, str], step: dict[str, str]
) -> list[tuple[str, int]]:
    runs: list[tuple[str, list[str], dict[str, str]]] = [
        ("python -c pass", [python, "-c", "pass"], base),
        *((label, [python, "-c", code], base) for label, code in FLOOR.items()),
        ("freshtoken token (SQLite store hit)", [cli, "token"], hit),
        ("freshtoken token --min-ttl 60 (store hit)", [cli, "token", "--min-ttl", "60"], hit),
        (
            "freshtoken -q token --format json (store hit)",
            [cli, "-q", "token", "--format", "json"],
            hit,
        ),
        ("python -m freshtoken token (store hit)", [python, "-m", "freshtoken", "token"], hit),
        ("freshtoken -v token (store hit)", [cli, "-v", "token"], hit),
        ("freshtoken token (a step after serve: endpoint)", [cli, "token"], step),
    ]
    return [(label, instructions(argv, env)) for label, argv, env in runs]


if __name__ == "__main__":
    startup()
