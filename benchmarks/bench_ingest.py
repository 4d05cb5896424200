"""Event ingestion on PostgreSQL: acknowledged single-event POSTs per second, group commit on
vs off in the same run, every acknowledged event checked in the database; ``--kill``: the
same load, SIGKILL mid-run, restart, acknowledged = stored.

Starts the real server (``uvicorn primetime.service.app:app_from_env --factory``) with
``--workers`` processes on a fresh PostgreSQL database (created on ``--postgres-url``,
dropped at the end; fsync and synchronous_commit as the server has them, printed), signs up
``--users`` accounts, and drives ``POST /api/v1/events`` with wrk (compiled, so the client
does not eat the server's CPU; ``apt-get install -y wrk``) and a Lua script: one event per
request, every body distinct (its own ``event_id``), ``--connections`` keep-alive
connections for ``--seconds``. The script records the ids of every 201, which are then
looked up in the database: acknowledged must equal stored (the difference in row count is
requests that were in flight when wrk stopped, stored but never answered).

Each mode runs on its own fresh database: ``on``, the default service (group commit,
``PRIMETIME_GROUP_COMMIT=true``, and the events fast lane, ``PRIMETIME_EVENTS_FAST_LANE``:
``primetime.service.fastlane``); ``route``, group commit with every request through
FastAPI's route (the path before the fast lane); ``off``, each request committing alone
(the path before group commit). Printed
per mode: events/s acknowledged, latency p50/p99 (wrk's, from send to last byte), errors and
non-201 answers, rows stored, transactions (distinct ``received_at``: one per commit) and
events per transaction, and the load average (other jobs on these cores lower the figures).

    python benchmarks/bench_ingest.py                 # on, route, off: 2 workers, 64 conns
    python benchmarks/bench_ingest.py --kill          # + SIGKILL at rate, restart, check

The served model hardly matters here (``--model popularity`` by default, trained into a
temporary registry when ``$PRIMETIME_HOME/models/registry`` lacks it).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _machine import header  # noqa: E402
from bench_service import database, ensure_registry  # noqa: E402

from primetime import paths  # noqa: E402
from primetime.service.process import Server  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "ingest.md"

# wrk's Lua: a distinct body per request (the event_id carries the run, thread and count),
# tokens round-robin; the ids of every 201 are kept per thread and written at the end.
LUA = r"""
local tokens = {%(tokens)s}
local items = {%(items)s}
local run = "%(run)s"
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  n = 0
  acked = {}
  statuses = {}
end

function request()
  n = n + 1
  local body = string.format(
    '{"item_id":"%%s","event_type":"play","event_id":"%%s-%%d-%%d"}',
    items[(n * 7919 + tid) %% #items + 1], run, tid, n)
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = "Bearer " .. tokens[(n + tid) %% #tokens + 1]
  return wrk.format("POST", "/api/v1/events", headers, body)
end

function response(status, headers, body)
  if status == 201 then
    local id = string.match(body, '"ids":%%[(%%d+)%%]')
    acked[#acked + 1] = id
  else
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local f = io.open("%(ids_file)s", "w")
  local bad = {}
  for _, t in ipairs(threads) do
    local a = t:get("acked")
    for _, id in ipairs(a) do f:write(id, "\n") end
    for s, c in pairs(t:get("statuses")) do bad[tostring(s)] = (bad[tostring(s)] or 0) + c end
  end
  f:close()
  local e = summary.errors
  local parts = {}
  for s, c in pairs(bad) do parts[#parts + 1] = string.format('"%%s": %%d', s, c) end
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p90_us": %%d, ' ..
    '"p99_us": %%d, "max_us": %%d, "connect": %%d, "read": %%d, "write": %%d, ' ..
    '"timeout": %%d, "status": {%%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.timeout,
    table.concat(parts, ", ")))
end
"""


def loadavg() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def signup(url: str, n: int) -> list[str]:
    """Tokens of `n` new accounts (signed up from 4 threads: argon2 is the cost)."""
    tag = secrets.token_hex(3)
    tokens: list[str] = [""] * n

    def part(k: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            for i in range(k, n, 4):
                r = c.post(
                    "/api/v1/auth/signup",
                    json={"username": f"ingest-{tag}-{i}", "password": "bench-password"},
                )
                r.raise_for_status()
                tokens[i] = r.json()["token"]

    threads = [threading.Thread(target=part, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tokens


def run_wrk(
    url: str, tokens: list[str], items: list[str], args: argparse.Namespace, workdir: Path
) -> tuple[dict[str, Any], list[int]]:
    """wrk for `args.seconds`; its summary and the acknowledged ids."""
    ids_file = workdir / f"acked-{secrets.token_hex(4)}.txt"
    script = workdir / "events.lua"
    script.write_text(
        LUA
        % {
            "tokens": ", ".join(f'"{t}"' for t in tokens),
            "items": ", ".join(json.dumps(i) for i in items),
            "run": secrets.token_hex(4),
            "ids_file": ids_file,
        }
    )
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    acked = [int(x) for x in ids_file.read_text().split()]
    return result, acked


def db_facts(db_url: str, acked: list[int]) -> dict[str, int]:
    """Rows stored, how many of the acknowledged ids are among them, and transactions."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows, commits = conn.execute(
                text("SELECT count(*), count(DISTINCT received_at) FROM events")
            ).one()
            found = 0
            for i in range(0, len(acked), 10_000):
                chunk = acked[i : i + 10_000]
                found += conn.execute(
                    text("SELECT count(*) FROM events WHERE id = ANY(:ids)"), {"ids": chunk}
                ).scalar_one()
        return {"rows": int(rows), "commits": int(commits), "found": int(found)}
    finally:
        engine.dispose()


def pg_settings(db_url: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            got = [
                f"{name} {conn.execute(text(f'SHOW {name}')).scalar_one()}"
                for name in ("fsync", "synchronous_commit", "wal_sync_method", "server_version")
            ]
        return "PostgreSQL: " + ", ".join(got)
    finally:
        engine.dispose()


def server_env(
    args: argparse.Namespace, registry: Path, db_url: str, group: bool, lane: bool = True
) -> dict[str, str]:
    return {
        **os.environ,
        "PRIMETIME_HOME": str(paths.home().resolve()),
        "PRIMETIME_ENVIRONMENT": "test",
        "PRIMETIME_DATABASE_URL": db_url,
        "PRIMETIME_CACHE_URL": args.redis_url if args.cache == "redis" else "memory",
        "PRIMETIME_REGISTRY_DIR": str(registry.resolve()),
        "PRIMETIME_DATA": args.data,
        "PRIMETIME_MODELS": args.model,
        "PRIMETIME_ADMIN_TOKEN": secrets.token_urlsafe(16),
        "PRIMETIME_RATE_LIMIT_PER_MINUTE": "0",
        "PRIMETIME_GROUP_COMMIT": "true" if group else "false",
        "PRIMETIME_EVENTS_FAST_LANE": "true" if lane else "false",
        "PRIMETIME_GROUP_COMMIT_WINDOW_MS": str(args.window_ms),
    }


MODES = {  # name -> (group commit, fast lane, label)
    "on": (True, True, "group commit ON  + fast lane"),
    "route": (True, False, "group commit ON, route only"),
    "off": (False, True, "group commit OFF           "),
}


def one_mode(
    mode: str,
    args: argparse.Namespace,
    registry: Path,
    items: list[str],
    workdir: Path,
    say: Any,
) -> dict[str, Any]:
    group, lane, name = MODES[mode]
    with database("postgres", args.postgres_url, workdir) as db_url:
        if mode == "on":
            say(pg_settings(db_url))
        server = Server(
            env=server_env(args, registry, db_url, group, lane),
            cwd=workdir,
            log=workdir / "server.log",
            workers=args.workers,
        )
        try:
            server.start()
            tokens = signup(server.url, args.users)
            # Warm-up (connections, caches): not measured, not counted.
            warm = argparse.Namespace(**{**vars(args), "seconds": 2})
            run_wrk(server.url, tokens, items, warm, workdir)
            time.sleep(1)  # the warm-up's last requests, cut by wrk, finish
            before = db_facts(db_url, [])
            load = loadavg()
            result, acked = run_wrk(server.url, tokens, items, args, workdir)
            facts = db_facts(db_url, acked)
        except Exception:
            print(server.tail(), file=sys.stderr)
            raise
        finally:
            server.stop()
    seconds = result["duration_us"] / 1e6
    rows = facts["rows"] - before["rows"]
    commits = facts["commits"] - before["commits"]
    errors = {k: result[k] for k in ("connect", "read", "write", "timeout") if result[k]}
    say(
        f"{name}: {len(acked) / seconds:8,.0f} events/s acknowledged · latency p50 "
        f"{result['p50_us'] / 1000:.1f} ms, p90 {result['p90_us'] / 1000:.1f} ms, p99 "
        f"{result['p99_us'] / 1000:.1f} ms, max {result['max_us'] / 1000:.0f} ms · "
        f"{len(acked):,} acknowledged in {seconds:.1f} s, non-201 {result['status'] or 'none'}, "
        f"socket errors {errors or 'none'} · {load}"
    )
    say(
        f"    stored {rows:,} rows in {commits:,} transactions ({rows / max(commits, 1):.1f} "
        f"events each) · acknowledged found in the database: {facts['found']:,} of "
        f"{len(acked):,} · stored but unanswered (in flight when wrk stopped): "
        f"{rows - len(acked)}"
    )
    if facts["found"] != len(acked):
        say(f"    LOST: {len(acked) - facts['found']} acknowledged events are not stored")
    lost = len(acked) - facts["found"]
    return {"rate": len(acked) / seconds, "p99_ms": result["p99_us"] / 1000, "lost": lost}


def kill_mode(
    args: argparse.Namespace, registry: Path, items: list[str], workdir: Path, say: Any
) -> bool:
    """Group commit on, wrk at full rate, SIGKILL after `args.kill_after` s, restart, check."""
    with database("postgres", args.postgres_url, workdir) as db_url:
        server = Server(
            env=server_env(args, registry, db_url, True),
            cwd=workdir,
            log=workdir / "server.log",
            workers=args.workers,
        )
        try:
            server.start()
            tokens = signup(server.url, args.users)
            load = loadavg()
            timer = threading.Timer(args.kill_after, server.kill)
            timer.start()
            run = argparse.Namespace(**{**vars(args), "seconds": int(args.kill_after + 2)})
            result, acked = run_wrk(server.url, tokens, items, run, workdir)
            timer.join()
            restart_s = server.start()
            facts = db_facts(db_url, acked)
        except Exception:
            print(server.tail(), file=sys.stderr)
            raise
        finally:
            server.stop()
    ok = facts["found"] == len(acked)
    say(
        f"SIGKILL after {args.kill_after:g} s at full rate (group commit ON, {args.workers} "
        f"workers): {len(acked):,} acknowledged ({len(acked) / args.kill_after:,.0f}/s), "
        f"{facts['found']:,} of them stored after the restart ({restart_s:.1f} s), "
        f"{facts['rows'] - facts['found']} stored but unanswered · "
        f"{'acknowledged = stored' if ok else 'LOST EVENTS'} · {load}"
    )
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    ap.add_argument("--connections", type=int, default=64, help="wrk connections")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--seconds", type=int, default=10, help="measured seconds per mode")
    ap.add_argument("--users", type=int, default=64, help="accounts the events are spread on")
    ap.add_argument("--window-ms", type=float, default=2.0, help="group commit window")
    ap.add_argument(
        "--modes",
        default="on,route,off",
        help="what to measure, in order: on (group commit + the events fast lane, the "
        "default service), route (group commit, every request through FastAPI's route), "
        "off (one transaction per request)",
    )
    ap.add_argument("--kill", action="store_true", help="also the SIGKILL durability check")
    ap.add_argument("--kill-after", type=float, default=5.0, help="seconds of load before it")
    ap.add_argument("--data", default="ml-100k")
    ap.add_argument("--model", default="popularity")
    ap.add_argument("--registry", default=None)
    ap.add_argument("--train-epochs", type=int, default=0)
    ap.add_argument("--cache", choices=["memory", "redis"], default="redis")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    ap.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="server on which fresh databases are created and dropped",
    )
    ap.add_argument("--out", type=Path, default=RESULTS, help="results file ('-': none)")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        ap.error("wrk is not installed (apt-get install -y wrk)")
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    say(header())
    say(f"at start: {loadavg()} (other jobs share these cores)")
    from primetime.data.open import open_dataset

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        workdir = Path(tmp)
        registry, origin = ensure_registry(args, workdir)
        ds = open_dataset(args.data).dataset
        items = ds.items.ids(range(1, ds.items.size))
        say(
            f"service: {origin} · {args.workers} uvicorn workers · cache {args.cache} · wrk "
            f"-t{args.threads} -c{args.connections} -d{args.seconds}s · {args.users} users · "
            f"group commit window {args.window_ms:g} ms"
        )
        ok = True
        for mode in args.modes.split(","):
            r = one_mode(mode.strip(), args, registry, items, workdir, say)
            ok = ok and r["lost"] == 0
        if args.kill:
            ok = kill_mode(args, registry, items, workdir, say) and ok
    say(f"at the end: {loadavg()}")
    if str(args.out) != "-":
        with open(args.out, "a") as f:
            f.write(f"\n## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n```\n")
            f.write("\n".join(lines) + "\n```\n")
        print(f"appended to {args.out}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
