"""`freshtoken demo`: the 15-minute build, compressed in time.

Steps run as separate processes and call a provider-like API (`/api/v2/tokens/me`) for several
token lifetimes. The naive pipeline mints one token at the start (it dies mid-build), or one per
call (the token endpoint's rate limit answers 400). The freshtoken steps share one token through
the library, `freshtoken token`, the local proxy and Node. Each step prints one line per call
("ok", or "fail <reason>").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from freshtoken.testing import AuthServer

NAIVE_ONCE = """
import os, sys, time, httpx
api, token_url, end = sys.argv[1], sys.argv[2], time.time() + float(sys.argv[3])
auth = ("demo-client", os.environ["DEMO_SECRET"])
token = httpx.post(token_url, data={"grant_type": "client_credentials"}, auth=auth).json()
while time.time() < end:
    r = httpx.get(api, headers={"Authorization": "Bearer " + token["access_token"]})
    print("ok" if r.status_code == 200 else f"fail {r.status_code} token expired", flush=True)
    time.sleep(0.25)
"""
NAIVE_PER_CALL = """
import os, sys, time, httpx
api, token_url, end = sys.argv[1], sys.argv[2], time.time() + float(sys.argv[3])
auth = ("demo-client", os.environ["DEMO_SECRET"])
while time.time() < end:
    t = httpx.post(token_url, data={"grant_type": "client_credentials"}, auth=auth)
    if t.status_code != 200:
        print(f"fail {t.status_code} {t.json().get('error_description', '')[:19]}", flush=True)
    else:
        r = httpx.get(api, headers={"Authorization": "Bearer " + t.json()["access_token"]})
        print("ok" if r.status_code == 200 else f"fail {r.status_code}", flush=True)
    time.sleep(0.25)
"""
FT_PYTHON = """
import sys, time, httpx, freshtoken
api, end = sys.argv[1], time.time() + float(sys.argv[2])
broker = freshtoken.TokenBroker.from_env()
with httpx.Client(auth=broker.httpx_auth()) as http:
    while time.time() < end:
        r = http.get(api)
        print("ok" if r.status_code == 200 else f"fail {r.status_code}", flush=True)
        time.sleep(0.25)
"""
FT_SHELL = """
end=$(( $(date +%s) + $2 ))
while [ "$(date +%s)" -lt "$end" ]; do
  header=$(freshtoken token --min-ttl 1 --format header)
  code=$(curl -s -o /dev/null -w "%{http_code}" -H "$header" "$1")
  if [ "$code" = 200 ]; then echo ok; else echo "fail $code"; fi
  sleep 0.25
done
"""
FT_PROXY = """
import os, sys, time, httpx
api, end = sys.argv[1], time.time() + float(sys.argv[2])
proxy, key = os.environ["FRESHTOKEN_PROXY_URL"], os.environ["FRESHTOKEN_KEY"]
with httpx.Client() as http:
    while time.time() < end:
        r = http.get(proxy + api, headers={"X-Freshtoken-Key": key})
        print("ok" if r.status_code == 200 else f"fail {r.status_code}", flush=True)
        time.sleep(0.25)
"""
FT_NODE = """
const [api, seconds] = process.argv.slice(1);
const http = require("http");
const {FRESHTOKEN_URL: base, FRESHTOKEN_KEY: key} = process.env;
const get = (url, headers) => new Promise((ok, no) => http.get(url, {headers}, res => {
  let b = ""; res.on("data", d => b += d); res.on("end", () => ok([res.statusCode, b]));
}).on("error", no));
(async () => {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    const [, body] = await get(base + "/token?min_ttl=1", {"X-Freshtoken-Key": key});
    const [code] = await get(api, {Authorization: "Bearer " + JSON.parse(body).access_token});
    console.log(code === 200 ? "ok" : "fail " + code);
    await new Promise(r => setTimeout(r, 250));
  }
})();
"""


@dataclass
class Step:
    side: str
    short: str
    name: str
    argv: list[str]
    counts: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    skipped: str = ""

    def read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            word, _, reason = line.strip().partition(" ")
            if word in ("ok", "fail"):
                self.counts[word] += 1
                if reason:
                    self.reasons[reason] += 1


@dataclass
class Build:
    steps: list[Step]
    naive: AuthServer
    fresh: AuthServer
    duration: int
    ttl: float
    plain: bool
    as_json: bool = False


def _steps(naive: AuthServer, fresh: AuthServer, seconds: int) -> list[Step]:
    """Each side calls its own server's API: the naive side's rate-limit hits cannot starve
    freshtoken's mints."""
    py, ft = sys.executable, [sys.executable, "-m", "freshtoken"]
    naive_api, naive_url = naive.url + "/api/v2/tokens/me", naive.token_url
    api = fresh.url + "/api/v2/tokens/me"
    steps = [
        Step(
            "naive",
            "naive-once",
            "one token minted at the start",
            [py, "-c", NAIVE_ONCE, naive_api, naive_url, str(seconds)],
        ),
        Step(
            "naive",
            "naive-per-call",
            "a token minted per call",
            [py, "-c", NAIVE_PER_CALL, naive_api, naive_url, str(seconds)],
        ),
        Step(
            "freshtoken",
            "python",
            "Python library (httpx auth)",
            [py, "-c", FT_PYTHON, api, str(seconds)],
        ),
        Step(
            "freshtoken",
            "shell",
            "shell: freshtoken token + curl",
            [*ft, "exec", "--", "sh", "-c", FT_SHELL, "step", api, str(seconds)],
        ),
        Step(
            "freshtoken",
            "proxy",
            "local proxy",
            [*ft, "exec", "--proxy", "--", py, "-c", FT_PROXY, "/api/v2/tokens/me", str(seconds)],
        ),
        Step(
            "freshtoken",
            "node",
            "Node via the local endpoint",
            [*ft, "exec", "--", "node", "-e", FT_NODE, "--", api, str(seconds)],
        ),
    ]
    if not shutil.which("curl"):
        steps[3].skipped = "curl is not installed"
    if not shutil.which("node"):
        steps[5].skipped = "node is not installed"
    return steps


def run(duration: int, ttl: float, plain: bool, as_json: bool = False) -> int:
    """Run both pipelines; 0 when the freshtoken side had no failed call."""
    from freshtoken.provider._presets import REGIONAL
    from freshtoken.testing import AuthServer

    like: dict[str, Any] = {**REGIONAL.stand_in, "ttl": ttl, "rate_window": 2.0}
    with (
        # Tighter on the naive side: a minting loop slowed by a busy machine still hits it.
        AuthServer(rate_limit=2, **like) as naive_server,
        AuthServer(rate_limit=4, **like) as ft_server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        bin_dir = str(Path(sys.executable).parent)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FRESHTOKEN_")}
        env.update(
            {
                "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
                "DEMO_SECRET": "demo-secret",
                "FRESHTOKEN_TOKEN_URL": ft_server.token_url,
                "FRESHTOKEN_CLIENT_ID": "demo-client",
                "FRESHTOKEN_CLIENT_SECRET": "demo-secret",
                "FRESHTOKEN_STORE": f"sqlite://{tmp}/tokens.db",
                "FRESHTOKEN_PROXY_UPSTREAM": ft_server.url,
            }
        )
        steps = _steps(naive_server, ft_server, duration)
        procs, readers = [], []
        for step in steps:
            if step.skipped:
                continue
            proc = subprocess.Popen(
                step.argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
            reader = threading.Thread(target=step.read, args=(proc,), daemon=True)
            reader.start()
            procs.append(proc)
            readers.append(reader)
        build = Build(steps, naive_server, ft_server, duration, ttl, plain, as_json)
        _watch(build, procs)
        for proc in procs:
            proc.wait(timeout=60)
        for reader in readers:
            reader.join(timeout=10)
        return _summary(build)


def _table(build: Build, title: str, elapsed: float | None = None) -> object:
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    table = Table(title=title)
    for column in ("side", "step", "progress", "calls ok", "failed", "why"):
        table.add_column(column)
    done = build.duration if elapsed is None else min(elapsed, build.duration)
    for step in build.steps:
        failed = step.counts["fail"]
        why = ", ".join(f"{r} x{n}" for r, n in step.reasons.most_common(2)) or step.skipped
        bar = ProgressBar(total=build.duration, completed=0 if step.skipped else done, width=12)
        table.add_row(
            step.side,
            step.name,
            bar,
            str(step.counts["ok"]),
            f"[red]{failed}[/]" if failed else "0",
            why,
        )
    for side, server in (("naive", build.naive), ("freshtoken", build.fresh)):
        stats = server.stats()
        table.add_row(
            side,
            "token endpoint: mints / rate-limit answers",
            "",
            str(stats["tokens_minted"]),
            str(stats["rate_limited"]),
            "",
        )
    return table


def _watch(build: Build, procs: list[subprocess.Popen[str]]) -> None:
    started = time.monotonic()
    if build.plain:
        shown = [s for s in build.steps if not s.skipped]
        print("calls ok/failed so far, per step: " + "  ".join(s.short for s in shown))
        while any(p.poll() is None for p in procs):
            time.sleep(1)
            line = "  ".join(f"{s.short}={s.counts['ok']}/{s.counts['fail']}" for s in shown)
            print(f"after {time.monotonic() - started:3.0f}s: {line}", flush=True)
        return
    from rich.live import Live

    with Live(refresh_per_second=4) as live:
        while any(p.poll() is None for p in procs):
            elapsed = time.monotonic() - started
            title = f"the build, {elapsed:.0f}s of {build.duration}s"
            live.update(_table(build, title, elapsed))  # type: ignore[arg-type]
            time.sleep(0.25)


def _summary(build: Build) -> int:
    steps = build.steps
    fresh_failed = sum(s.counts["fail"] for s in steps if s.side == "freshtoken")
    naive_failed = sum(s.counts["fail"] for s in steps if s.side == "naive")
    minted = build.fresh.stats()["tokens_minted"]
    verdict = (
        f"freshtoken: 0 failed calls over {build.duration / build.ttl:.0f} token "
        f"lifetimes with {minted} mints shared by every step; the naive pipeline failed "
        f"{naive_failed} calls (an expired token, then the rate limit)."
        if fresh_failed == 0
        else f"freshtoken side had {fresh_failed} failed calls: this is a bug, please report"
    )
    if build.as_json:
        print(json.dumps({s.short: dict(s.counts) for s in steps}))
        print(verdict)
    elif build.plain:
        print("step            side        ok  failed")
        for s in steps:
            print(f"{s.short:<15} {s.side:<10} {s.counts['ok']:>3}  {s.counts['fail']:>6}")
        print(verdict)
    else:
        from rich.console import Console

        console = Console()
        console.print(_table(build, "the build, done"))
        console.print(("[green]" if fresh_failed == 0 else "[red]") + verdict)
    return 0 if fresh_failed == 0 else 1


@click.command()
@click.option(
    "--duration",
    type=click.IntRange(4, 600),
    default=24,
    show_default=True,
    help="Seconds the compressed build runs.",
)
@click.option(
    "--ttl",
    type=click.FloatRange(1, 60),
    default=4.0,
    show_default=True,
    help="Token lifetime on the demo servers (a day, 86400 s, is a common default).",
)
@click.option("--plain", is_flag=True, help="Labelled lines (the default off a terminal).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    help="json: the summary as one JSON object (and the verdict) at the end.",
)
def demo(duration: int, ttl: float, plain: bool, fmt: str) -> None:
    """Show the 15-minute build in seconds: a naive pipeline against freshtoken.

    Two provider-like test servers (short token lifetime, token-endpoint rate limit on); the
    naive steps mint once (the token dies mid-build) or per call (the rate limit answers 400);
    the freshtoken steps share one token from Python, the shell, the local proxy and Node.
    Exits 0 only if the freshtoken side had no failed call.

    \b
    Example:
      freshtoken demo --duration 12 --ttl 3
    """
    as_json = fmt == "json"
    sys.exit(run(duration, ttl, plain or as_json or not sys.stdout.isatty(), as_json))
