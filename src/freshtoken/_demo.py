"""`scripts/demo.sh`: a token from the shipped test server, used against its protected API."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx


def main() -> int:
    server = subprocess.Popen(
        [sys.executable, "-m", "freshtoken", "testserver", "--genesys"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready = json.loads(server.stdout.readline())
        print(f"test authorization server: {ready['url']}")
        env = {
            **os.environ,
            "FRESHTOKEN_TOKEN_URL": ready["token_url"],
            "FRESHTOKEN_CLIENT_ID": "demo-client",
            "FRESHTOKEN_CLIENT_SECRET": "demo-secret",
        }
        out = subprocess.run(
            [sys.executable, "-m", "freshtoken", "token"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return out.returncode
        token = out.stdout.strip()
        print(f"freshtoken token: {token[:6]}... ({len(token)} characters)")
        me = httpx.get(
            ready["url"] + "/api/v2/tokens/me", headers={"Authorization": f"Bearer {token}"}
        )
        print(f"GET /api/v2/tokens/me with it: HTTP {me.status_code}")
        return 0 if me.status_code == 200 else 1
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
