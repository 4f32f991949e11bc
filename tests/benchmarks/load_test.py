"""Load test against a running stack (`make run`): concurrent resident conversations
plus staff lookups, over loopback only. Run by hand, not part of the test suite:

    echo "$PASSWORD" | .venv/bin/madoguchi user add load-staff --role staff
    MADOGUCHI_CHAT_RATE_PER_CLIENT=100000 make run     # in one terminal: every
                                                       # resident here is 127.0.0.1
    MADOGUCHI_LOAD_PASSWORD="$PASSWORD" .venv/bin/python tests/benchmarks/load_test.py

Phase 1: ``--conversations`` residents talk at once (a mix of answered questions,
clarify-then-choose, follow-ups and handoffs), while ``--staff`` staff members look up
answers (one lookup every 1-3 s each). Each resident waits for the reply, then reads and types for
``--think`` seconds (uniform between the two values, seeded) before the next message,
as a person would; ``--think 0 0`` sends each next message at once (a stress test:
latency then measures the queue, not the service).
Phase 2: staff lookups alone, as fast as ``--lookup-concurrency`` client processes can
send them, for the lookup throughput.

Reports throughput, latency p50/p95/p99 per kind, errors (any non-200, an empty reply
outside a handoff), how many chat turns were answered through Rasa or from the engine
(degraded), and the peak memory (VmHWM) of each process listening on the stack's
ports. Bounded by ``--max-seconds`` and the counts given; writes only tickets and
feedback into the running stack's database.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlparse

import httpx

QUESTIONS = [
    "粗大ごみを出したい",
    "国民健康保険料はコンビニで払えますか",
    "住民票の写しを取りたい",
    "児童手当の申請方法を教えて",
    "引っ越したときの手続きは",
    "印鑑登録をしたい",
    "マイナンバーカードを受け取りたい",
    "市県民税の納付書をなくしました",
]
FOLLOW_UPS = [("国民健康保険料はコンビニで払えますか", "いつまでに払えばいい？")]
LOOKUPS = QUESTIONS + ["保険料 減免", "転入 必要なもの", "ごみ 分別", "避難所 どこ", "戸籍 郵送"]


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    paths: dict[str, int] = field(default_factory=dict)
    think_range: tuple[float, float] = (0.0, 0.0)
    staff: dict[str, str] = field(default_factory=dict)  # bearer header for lookups
    random: random.Random = field(default_factory=lambda: random.Random(7))

    def think(self) -> float:
        return self.random.uniform(*self.think_range)

    def add(self, kind: str, seconds: float) -> None:
        self.latencies.setdefault(kind, []).append(seconds)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def turn(client: httpx.AsyncClient, stats: Stats, session: dict, message: str) -> dict:
    """One message; ``session`` carries the conversation id the server issued."""
    await asyncio.sleep(stats.think())
    started = time.perf_counter()
    body = {"message": message} | ({"session_id": session["id"]} if session.get("id") else {})
    response = await client.post("/api/chat", json=body)
    stats.add("chat", time.perf_counter() - started)
    if response.status_code != 200:
        stats.errors.append(f"chat {response.status_code}: {response.text[:200]}")
        return {}
    body = response.json()
    session["id"] = body["session_id"]
    path = "engine" if body.get("degraded") else "rasa"
    stats.paths[path] = stats.paths.get(path, 0) + 1
    if not body["replies"] and not body.get("handoff_id"):
        stats.errors.append(f"chat: empty reply to {message!r}")
    return body


async def conversation(client: httpx.AsyncClient, stats: Stats, number: int) -> None:
    session: dict = {}
    kind = number % 5
    if kind in (0, 1):  # a question, answered, then 「解決した」
        reply = await turn(client, stats, session, QUESTIONS[number % len(QUESTIONS)])
        buttons = (reply.get("replies") or [{}])[-1].get("buttons") or []
        if buttons:
            await turn(client, stats, session, buttons[0]["payload"])
        await turn(client, stats, session, "ありがとうございました")
    elif kind == 2:  # clarify, then a choice
        reply = await turn(client, stats, session, "税金を払いたい")
        buttons = (reply.get("replies") or [{}])[0].get("buttons") or []
        if buttons:
            await turn(client, stats, session, buttons[0]["payload"])
    elif kind == 3:  # a follow-up
        first, second = FOLLOW_UPS[0]
        await turn(client, stats, session, first)
        await turn(client, stats, session, second)
    else:  # a handoff, then a message the staff member will read
        await turn(client, stats, session, "職員と話したい")
        await turn(client, stats, session, "折り返しお願いします")


async def lookups(
    client: httpx.AsyncClient, stats: Stats, count: int, kind: str, stop: asyncio.Event
) -> None:
    """A staff member on the phone: a lookup every 1-3 s while residents chat."""
    for i in range(count):
        await asyncio.sleep(stats.random.uniform(1.0, 3.0))
        if stop.is_set():
            return
        started = time.perf_counter()
        response = await client.get(
            "/api/answers", params={"q": LOOKUPS[i % len(LOOKUPS)]}, headers=stats.staff
        )
        stats.add(kind, time.perf_counter() - started)
        if response.status_code != 200:
            stats.errors.append(f"lookup {response.status_code}")


def plain_lookups(
    base_url: str, headers: dict, count: int, offset: int
) -> tuple[list[float], list[str]]:
    """``count`` lookups one after another on one keep-alive connection."""
    url = urlparse(base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=30)
    seconds, failures = [], []
    for i in range(count):
        query = urlencode({"q": LOOKUPS[(i + offset) % len(LOOKUPS)]})
        started = time.perf_counter()
        connection.request("GET", f"/api/answers?{query}", headers=headers)
        response = connection.getresponse()
        response.read()
        seconds.append(time.perf_counter() - started)
        if response.status != 200:
            failures.append(f"lookup {response.status}")
    connection.close()
    return seconds, failures


def listening_pids(ports: list[int]) -> dict[int, int]:
    """port -> pid of the process listening on it (Linux /proc)."""
    inodes: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            port = int(parts[1].rsplit(":", 1)[1], 16)
            if parts[3] == "0A" and port in ports:  # LISTEN
                inodes[f"socket:[{parts[9]}]"] = port
    found: dict[int, int] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target in inodes:
                    found[inodes[target]] = int(pid)
        except OSError:
            continue
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_memory_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def summary(stats: Stats, seconds: float) -> dict:
    out = {}
    for kind, values in stats.latencies.items():
        out[kind] = {
            "requests": len(values),
            "per_s": round(len(values) / seconds, 1),
            "p50_ms": round(statistics.median(values) * 1000, 1),
            "p95_ms": round(percentile(values, 0.95) * 1000, 1),
            "p99_ms": round(percentile(values, 0.99) * 1000, 1),
        }
    return out


async def main(args: argparse.Namespace) -> dict:
    ports = {
        "api": urlparse(args.base_url).port or 80,
        "rasa": args.rasa_port,
        "actions": args.action_port,
    }
    pids = listening_pids(list(ports.values()))
    processes = {name: pids[port] for name, port in ports.items() if port in pids}
    cpu_start = {name: cpu_seconds(pid) for name, pid in processes.items()}
    limits = httpx.Limits(max_connections=args.conversations + args.staff + 4)
    async with httpx.AsyncClient(base_url=args.base_url, timeout=30, limits=limits) as client:
        health = (await client.get("/api/health")).json()
        stats = Stats(think_range=tuple(args.think))
        token = await client.post(
            "/api/auth/token", json={"name": args.user, "password": args.password}
        )
        if token.status_code != 200:
            sys.exit(f"error: logging in as {args.user!r}: {token.status_code} {token.text}")
        stats.staff = {"Authorization": f"Bearer {token.json()['access_token']}"}
        stop = asyncio.Event()
        started = time.perf_counter()
        rounds = 0
        while rounds < args.rounds and time.perf_counter() - started < args.max_seconds:
            rounds += 1
            background = [
                asyncio.create_task(lookups(client, stats, 10_000, "lookup_during_chat", stop))
                for _ in range(args.staff)
            ]
            await asyncio.gather(
                *(conversation(client, stats, n) for n in range(args.conversations))
            )
            stop.set()
            await asyncio.gather(*background)
            stop.clear()
        phase1 = time.perf_counter() - started
        result = {"phase1_conversations": summary(stats, phase1)}
        result["phase1_cpu_share"] = {
            name: round((cpu_seconds(pid) - cpu_start[name]) / phase1, 2)
            for name, pid in processes.items()
        }
        result["phase1_seconds"] = round(phase1, 1)
        result["phase1_errors"] = len(stats.errors)
        result["phase1_error_samples"] = stats.errors[:5]
        result["chat_paths"] = stats.paths

    # Phase 2 in separate processes with the standard library's HTTP client: an asyncio
    # httpx client costs more CPU per request than the lookup itself, and on a two-core
    # machine the load generator shares the cores with the server.
    alone = Stats()
    per_client = args.lookups // args.lookup_concurrency
    started = time.perf_counter()
    with ProcessPoolExecutor(args.lookup_concurrency) as pool:
        jobs = [
            pool.submit(plain_lookups, args.base_url, stats.staff, per_client, n)
            for n in range(args.lookup_concurrency)
        ]
        for job in jobs:
            seconds, failures = job.result()
            alone.latencies.setdefault("lookup", []).extend(seconds)
            alone.errors += failures
    phase2 = time.perf_counter() - started
    result["phase2_lookups"] = summary(alone, phase2)
    result["phase2_errors"] = len(alone.errors)
    result["peak_memory_mb"] = {
        name: round(peak_memory_mb(pids[port]) or 0, 1) if port in pids else None
        for name, port in ports.items()
    }
    result["cores"] = os.cpu_count()
    result["health_before"] = health["status"]
    result["config"] = {k: v for k, v in vars(args).items() if k != "password"}
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--rasa-port", type=int, default=5005)
    parser.add_argument("--action-port", type=int, default=5055)
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="times the N conversations run")
    parser.add_argument("--staff", type=int, default=10, help="staff looking up during phase 1")
    parser.add_argument(
        "--lookup-concurrency", type=int, default=4, help="client processes in phase 2"
    )
    parser.add_argument("--lookups", type=int, default=2000, help="staff lookups in phase 2")
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument(
        "--think",
        type=float,
        nargs=2,
        default=[2.0, 6.0],
        metavar=("MIN", "MAX"),
        help="seconds a resident reads and types between messages (default 2-6)",
    )
    parser.add_argument("--user", default="load-staff", help="a staff account for lookups")
    parser.add_argument(
        "--password",
        default=os.environ.get("MADOGUCHI_LOAD_PASSWORD", ""),
        help="its password (default: $MADOGUCHI_LOAD_PASSWORD)",
    )
    arguments = parser.parse_args()
    host = urlparse(arguments.base_url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"error: {arguments.base_url} is not loopback; this test only runs locally")
    print(json.dumps(asyncio.run(main(arguments)), ensure_ascii=False, indent=2))
