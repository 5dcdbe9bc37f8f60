#!/usr/bin/env python
"""videobridge benchmarks: one command, markdown tables on stdout.

    python tests/bench/run.py            # full run (a few minutes on a 2-core box)
    python tests/bench/run.py --quick    # smaller samples, one round (about a minute)
    python tests/bench/run.py --only join,daily   # some sections: join costs daily exits growth presence webhook
                                                  # startup failover

Absolute times drift between machines, so every table carries ratios or counts measured side by
side in the same run: the bridge against a bare aiohttp endpoint (the framework's limit) and a
minimal handler doing only the unavoidable work (the floor), growth against the smallest size,
latencies against the bare round trip, start-up against the bare interpreter, failover against
the leader lease's TTL.

Processes: the bridge (`python -m videobridge serve`, JSON logs at info to a file), the bare and
floor servers, the Daily emulator and, for the Redis store's rows, Debian's redis-server (AOF,
appendfsync always, as tests/redis_support.py starts it) each run in a process of their own; this
process is the load generator (aiohttp client, one session per concurrency level, every request with a JWT of its own,
all minted before the timed window).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import aiohttp  # noqa: E402
from loadgen import Req, Result, run, session  # noqa: E402
from redis_support import RedisServer  # noqa: E402
from rel_support import API_KEY, HOOK_SECRET, PYTHON, Daemon, daemon_env, percentile, principals  # noqa: E402

from videobridge.devjwt import DevSigner  # noqa: E402

DEFAULT_CLIENTS = "1,32,256"
SECTIONS = ("join", "costs", "daily", "exits", "growth", "presence", "webhook", "startup", "failover")
STARTER = "724ke-xyaaa-aaaan-ayptq-cai"


# ---- small helpers --------------------------------------------------------------------------------

def ms(seconds: float) -> str:
    if seconds != seconds:
        return "–"
    value = seconds * 1000
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:.0f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "–"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_commands(url: str) -> dict[str, int]:
    """Commands redis-server has run so far, by name (INFO commandstats; the INFO calls left out)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5.0)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()
            if name != "cmdstat_info"}


def counted(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def log_step(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def iso_to_epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Proc:
    """A targets.py server in its own process."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([PYTHON, str(HERE / "targets.py"), *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "PORT":
            self.stop()
            raise RuntimeError(f"targets.py {args[0]} did not start")
        self.url = f"http://127.0.0.1:{line[1]}"
        self.extra = line[2:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class LogTail:
    """Reads new JSON log lines of the bridge that contain one of `markers`."""

    def __init__(self, path: Path, *markers: bytes) -> None:
        self.path = path
        self.markers = markers
        self.offset = path.stat().st_size if path.exists() else 0
        self._partial = b""

    def read(self) -> list[dict[str, Any]]:
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        self.offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        return [json.loads(line) for line in lines if any(m in line for m in self.markers)]


# ---- the bench ------------------------------------------------------------------------------------

class Bench:
    def __init__(self, quick: bool, tmp: Path, levels: Sequence[int] = (1, 32, 256)) -> None:
        self.quick = quick
        self.levels = tuple(levels)  # the join section's client counts
        self.tmp = tmp
        self.signer = DevSigner()
        self.pem_file = tmp / "oc_public.pem"
        self.pem_file.write_text(self.signer.public_pem)
        self.emulator = Proc("emulator", "--api-key", API_KEY)
        self.domain_id = self.emulator.extra[0]
        self.procs: list[Proc] = [self.emulator]
        self.daemons: list[Daemon] = []
        self.redis_servers: list[RedisServer] = []
        self.out: list[str] = []
        self.bare_rtt = float("nan")
        self.seed = random.randrange(1 << 30)

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.stop()
        for server in self.redis_servers:
            server.stop()
        for proc in self.procs:
            proc.stop()

    def redis(self, name: str) -> RedisServer:
        """A fresh redis-server (its own directory, so its own AOF), stopped by close() at the latest."""
        if shutil.which("redis-server") is None:
            raise SystemExit("redis-server is not installed (Debian's redis-server package): the Redis rows need it")
        directory = self.tmp / f"redis-{name}"
        directory.mkdir()
        server = RedisServer(directory)
        server.start()
        self.redis_servers.append(server)
        return server

    def stop_redis(self, server: RedisServer) -> None:
        server.stop()
        self.redis_servers.remove(server)

    def bridge(self, state: Path, name: str, **extra: str) -> Daemon:
        env = daemon_env(emulator_url=self.emulator.url, oc_public=self.signer.public_pem, state=state,
                         extra={"VIDEOBRIDGE_PRESENCE_INTERVAL": "3600", **extra})
        daemon = Daemon(env, log_path=self.tmp / f"{name}.log", cwd=self.tmp).start()
        self.daemons.append(daemon)
        return daemon

    def stop_bridge(self, daemon: Daemon) -> None:
        daemon.stop()
        self.daemons.remove(daemon)

    async def daily_requests(self, http: aiohttp.ClientSession) -> dict[str, int]:
        async with http.get(self.emulator.url + "/_emulator/stats") as resp:
            return dict((await resp.json())["requests"])

    # -- requests ---------------------------------------------------------------------------------
    def next_seed(self) -> int:
        self.seed += 1
        return self.seed

    def joins(self, group: str, count: int) -> list[Req]:
        users = principals(count, self.next_seed())
        exp = int(time.time()) + 3600 + self.next_seed() % 1000 * 10_000
        return [Req("GET", f"/room/meeting_access_token?initiator-username=user{i}",
                    {"x-auth-jwt": self.signer.video_call_token("JoinVideoCall", user_id=user,
                                                                chat_id={"Group": group}, exp=exp + i)})
                for i, user in enumerate(users)]

    def starts(self, count: int) -> list[Req]:
        groups = principals(count, self.next_seed())
        exp = int(time.time()) + 3600
        return [Req("GET", f"/room/meeting_access_token?initiator-username=starter{i}",
                    {"x-auth-jwt": self.signer.video_call_token("StartVideoCall", user_id=STARTER,
                                                                chat_id={"Group": group}, exp=exp + i)})
                for i, group in enumerate(groups)]

    def ends(self, groups: Sequence[str]) -> list[Req]:
        exp = int(time.time()) + 3600
        return [Req("POST", "/room/end_meeting",
                    {"x-auth-jwt": self.signer.video_call_token("MarkVideoCallAsEnded", user_id=STARTER,
                                                                chat_id={"Group": g}, exp=exp + i)})
                for i, g in enumerate(groups)]

    def start_for(self, group: str) -> Req:
        token = self.signer.video_call_token("StartVideoCall", user_id=STARTER, chat_id={"Group": group})
        return Req("GET", "/room/meeting_access_token?initiator-username=starter", {"x-auth-jwt": token})


async def run_paced(http: aiohttp.ClientSession, base: str, reqs: Sequence[Req], interval: float,
                    keep_bodies: bool = False) -> Result:
    """One request at a time, starting at most one every `interval` seconds."""
    total = Result()
    for req in reqs:
        began = time.perf_counter()
        one = await run(http, base, [req], 1, keep_bodies=keep_bodies)
        total.latencies += one.latencies
        total.statuses.update(one.statuses)
        total.failures.update(one.failures)
        total.bodies += one.bodies
        total.count += 1
        await asyncio.sleep(max(0.0, interval - (time.perf_counter() - began)))
    return total


START_PACE = 0.06  # the bridge keeps to Daily's 20 requests/s; space starts so that limit is not what we time


def check(result: Result, what: str, ok: Sequence[int] = (200,)) -> None:
    if result.errors(ok):
        raise SystemExit(f"{what}: {result.errors(ok)} errors: {dict(result.statuses)} {dict(result.failures)}")


# ---- 1. join throughput and latency ---------------------------------------------------------------

async def section_join(b: Bench) -> None:
    log_step("join throughput: starting bridges (file and Redis store), bare and floor servers")
    group, redis_group = principals(2, b.next_seed())  # a call on each bridge, each in its own group
    bridge = b.bridge(b.tmp / "join-state.json", "join")
    redis = b.redis("join")
    redis_bridge = b.bridge(b.tmp / "join-redis-unused.json", "join-redis", VIDEOBRIDGE_STORE=redis.url)
    async with session(4) as http:
        started = await run(http, bridge.url, [b.start_for(group)], 1, keep_bodies=True)
        check(started, "start")
        sample = await run(http, bridge.url, b.joins(group, 1), 1, keep_bodies=True)
        check(sample, "sample join")
        started = await run(http, redis_bridge.url, [b.start_for(redis_group)], 1, keep_bodies=True)
        check(started, "start (redis)")
        redis_sample = await run(http, redis_bridge.url, b.joins(redis_group, 1), 1, keep_bodies=True)
        check(redis_sample, "sample join (redis)")
    answer = json.loads(sample.bodies[0])
    if not json.loads(redis_sample.bodies[0])["joining"]:
        raise SystemExit("join on the Redis-store bridge did not find its call")
    body_size = len(sample.bodies[0])
    redis_body_size = len(redis_sample.bodies[0])
    bare = Proc("bare", "--body-size", str(body_size))
    floor = Proc("floor", "--pem-file", str(b.pem_file), "--api-key", API_KEY, "--room", answer["roomName"],
                 "--domain-id", b.domain_id)
    b.procs += [bare, floor]
    targets = {"bare": bare.url, "floor": floor.url, "bridge": bridge.url, "bridge (redis)": redis_bridge.url}
    pids = {"bare": bare.proc.pid, "floor": floor.proc.pid, "bridge": bridge.pid, "bridge (redis)": redis_bridge.pid}
    groups = {name: redis_group if name == "bridge (redis)" else group for name in targets}
    assert redis.proc is not None
    redis_pid = redis.proc.pid
    levels = b.levels
    sizes = {n: 300 if n == 1 else 2000 for n in levels} if b.quick else {n: 1500 if n == 1 else 8000 for n in levels}
    rounds = 1 if b.quick else 3
    warmup = 300 if b.quick else 1000

    log_step("minting JWTs")
    plans: dict[tuple[int, int, str], list[Req]] = {}  # the Redis bridge's call is in a group of its own
    for level in levels:
        for rnd in range(rounds):
            plan = b.joins(group, sizes[level])
            redis_plan = b.joins(redis_group, sizes[level])
            for name in targets:
                plans[level, rnd, name] = redis_plan if groups[name] == redis_group else plan
    warm = {name: b.joins(groups[name], warmup + 256) for name in targets}

    results: dict[tuple[int, str], list[Result]] = {}
    cpu: dict[tuple[int, str], float] = {}  # server CPU seconds spent in the timed windows
    redis_cpu: dict[int, float] = {}  # redis-server's, in the Redis bridge's timed windows
    redis_cmds: dict[str, int] = {}  # commands redis-server ran in those windows, by name
    for name, url in targets.items():  # warm-up: imports, caches, JIT-free but allocator-warm
        async with session(32) as http:
            check(await run(http, url, warm[name][:warmup], 32), f"warm-up {name}")
    slot = 0
    for level in levels:
        for rnd in range(rounds):
            # rotate who goes first, counting on across levels: with 4 targets and 3 rounds a
            # per-level rotation would never put the last target first
            order = list(targets)
            order = order[slot % len(order):] + order[: slot % len(order)]
            slot += 1
            for name in order:
                log_step(f"join: {level} clients, round {rnd + 1}/{rounds}, {name}")
                async with session(level) as http:
                    # open `level` connections before the timed window
                    opened = await run(http, targets[name], warm[name][warmup: warmup + level], level)
                    if name != "bridge (redis)":  # its errors are counted and reported, not fatal
                        check(opened, "connect")
                    before = proc_cpu(pids[name])
                    if name == "bridge (redis)":
                        before_redis, before_cmds = proc_cpu(redis_pid), redis_commands(redis.url)
                    result = await run(http, targets[name], plans[level, rnd, name], level)
                    cpu[level, name] = cpu.get((level, name), 0.0) + proc_cpu(pids[name]) - before
                    if name == "bridge (redis)":
                        redis_cpu[level] = redis_cpu.get(level, 0.0) + proc_cpu(redis_pid) - before_redis
                        for cmd, calls in counted(before_cmds, redis_commands(redis.url)).items():
                            redis_cmds[cmd] = redis_cmds.get(cmd, 0) + calls
                if name != "bridge (redis)":
                    check(result, f"{name} at {level}")
                results.setdefault((level, name), []).append(result)

    rows = []
    summary: dict[int, dict[str, float]] = {}
    cpu_summary: dict[int, dict[str, float]] = {}
    for level in levels:
        tput = {name: statistics.median((r.count - r.errors()) / r.seconds for r in results[level, name])
                for name in targets}  # answered joins (200) per second
        per_join = {name: cpu[level, name] / sum(r.count for r in results[level, name]) for name in targets}
        summary[level] = tput
        cpu_summary[level] = per_join
        for name in targets:
            lat = [x for r in results[level, name] for x in r.latencies]
            errors = sum(r.errors() for r in results[level, name])
            rows.append([level, name, f"{tput[name]:.0f}", ratio(tput[name], tput["floor"]),
                         ratio(tput[name], tput["bare"]), ms(percentile(lat, 50)), ms(percentile(lat, 99)),
                         f"{per_join[name] * 1e6:.0f}", ratio(per_join[name], per_join["floor"]), errors])
        if level == 1:
            b.bare_rtt = percentile([x for r in results[1, "bare"] for x in r.latencies], 50)
    b.stop_bridge(bridge)
    b.stop_bridge(redis_bridge)
    b.stop_redis(redis)
    redis_errors = {level: sum(r.errors() for r in results[level, "bridge (redis)"]) for level in levels}
    why = sorted({e.get("error", "?") for e in redis_bridge.log_events("state_unwritable", "state_unavailable")})
    redis_joins = sum(r.count for level in levels for r in results[level, "bridge (redis)"])
    per_redis_join = {cmd: calls / redis_joins for cmd, calls in sorted(redis_cmds.items())}
    redis_cpu_32 = redis_cpu[32] / sum(r.count for r in results[32, "bridge (redis)"])
    s32 = summary[32]
    b.out.append("### Join throughput and latency\n")
    b.out.append(f"Every request carries its own ES256 JWT (distinct user and exp; {sum(sizes.values()) * rounds} "
                 f"timed joins per target, minted before the timed window), {rounds} round(s) per level "
                 f"(median throughput of answered joins, pooled latencies; the order of the targets rotates from one round to the "
                 f"next, across levels), answer body {body_size} bytes for every target "
                 f"(the Redis-store bridge's: {redis_body_size}). \"bridge (redis)\" is a second bridge on "
                 f"VIDEOBRIDGE_STORE=redis://… (its own redis-server, AOF with appendfsync always), its call in a "
                 f"group of its own; its server CPU is the bridge process's only (redis-server's is given "
                 f"below).\n")
    b.out.append(table(["clients", "target", "joins/s", "× floor", "× bare", "p50 ms", "p99 ms",
                        "server CPU µs/join", "CPU × floor", "errors"], rows))
    c32 = cpu_summary[32]
    answered = {name: [(r.count - r.errors()) / r.seconds for r in results[32, name]] for name in targets}
    paired = [bridge_rate / floor_rate for bridge_rate, floor_rate in zip(answered["bridge"], answered["floor"])]
    commands = ", ".join(f"{cmd} {n:.2f}" for cmd, n in per_redis_join.items() if n >= 0.01) or "none"
    rare = ", ".join(f"{cmd} {redis_cmds[cmd]}" for cmd, n in per_redis_join.items() if n < 0.01)
    if rare:
        commands += f" (and in all, over {redis_joins} joins: {rare})"
    b.out.append(f"\nAt 32 clients the bridge reaches **{s32['bridge'] / s32['floor']:.2f}× the floor's throughput** "
                 f"(target ≥ 0.90; round by round, each round's bridge against that round's floor: "
                 f"{', '.join(f'{x:.2f}' for x in paired)}, median {statistics.median(paired):.2f}×) and "
                 f"{s32['bridge'] / s32['bare']:.2f}× bare; the floor alone is "
                 f"{s32['floor'] / s32['bare']:.2f}× bare. Server CPU per join: bridge "
                 f"{c32['bridge'] / c32['floor']:.2f}× the floor's (so routing, state, logging and metrics cost "
                 f"{1 - c32['floor'] / c32['bridge']:.0%} of the bridge's CPU per join). "
                 f"Redis-store join throughput beside it: **{s32['bridge (redis)'] / s32['floor']:.2f}× the floor's**, "
                 f"{s32['bridge (redis)'] / s32['bridge']:.2f}× the file-store bridge's; its bridge process spends "
                 f"{c32['bridge (redis)'] / c32['bridge']:.2f}× the file-store bridge's CPU per join, and "
                 f"redis-server {redis_cpu_32 * 1e6:.0f} µs more. Redis commands per join (all levels, "
                 f"INFO commandstats, which also counts what Lua scripts run; the view reloads every "
                 f"few seconds are in it): {commands}.\n")
    if any(redis_errors.values()):
        failed = ", ".join(f"{n} at {level} clients" for level, n in redis_errors.items() if n)
        b.out.append(f"**The Redis-store bridge failed joins**: {failed} (its joins/s counts the 200s only; its "
                     f"latencies include the failures). Its log says: {'; '.join(why) or 'nothing'}.\n")


async def section_costs(b: Bench) -> None:
    import costs

    log_step("per-join CPU breakdown (in-process)")
    rows = costs.measure(800 if b.quick else 3000)
    b.out.append("### Where a join's CPU goes\n")
    b.out.append("In-process, best of 5 passes over distinct JWTs and users (no HTTP); \"floor\" rows are work the "
                 "floor server does too, \"bridge only\" rows are what the bridge adds.\n")
    b.out.append(costs.render(rows))
    b.out.append("")


# ---- 2. Daily calls per request, start latency -----------------------------------------------------

async def section_daily(b: Bench) -> None:
    log_step("Daily calls per request")
    bridge = b.bridge(b.tmp / "daily-state.json", "daily")
    n_start = 30 if b.quick else 100
    n_join = 200 if b.quick else 1000
    n_end = 6 if b.quick else 12
    rows = []
    async with session(4) as http:
        async def measured(reqs: list[Req], ok: Sequence[int] = (200,),
                           pace: float = 0.0) -> tuple[Result, dict[str, int]]:
            before = await b.daily_requests(http)
            result = await (run_paced(http, bridge.url, reqs, pace, keep_bodies=True) if pace
                            else run(http, bridge.url, reqs, 1, keep_bodies=True))
            check(result, "daily", ok)
            after = await b.daily_requests(http)
            return result, {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}

        start_reqs = b.starts(n_start)
        started, start_daily = await measured(start_reqs[: n_start // 2], pace=START_PACE)
        burst, burst_daily = await measured(start_reqs[n_start // 2:])
        joined, join_daily = await measured(
            [r for i in range(n_join) for r in b.joins(_group_of(b, start_reqs[i % n_start]), 1)])
        again, again_daily = await measured(
            [b.start_for(_group_of(b, start_reqs[i])) for i in range(min(n_start, 50))])
        ended, end_daily = await measured(b.ends([_group_of(b, start_reqs[i]) for i in range(n_end)]))
        assert all(json.loads(x)["ended"] for x in ended.bodies), "end_meeting did not end"
        await asyncio.sleep(1.0)  # let Daily's DELETE budget (2/s) refill
        paced, paced_daily = Result(), {}
        for i in range(n_end, 2 * n_end):
            one, daily = await measured(b.ends([_group_of(b, start_reqs[i])]))
            paced.latencies += one.latencies
            paced.count += one.count
            for k, v in daily.items():
                paced_daily[k] = paced_daily.get(k, 0) + v
            await asyncio.sleep(0.6)
    join_p50 = percentile(joined.latencies, 50)
    for what, result, daily, original in (
            (f"start (new call), {START_PACE * 1000:.0f} ms apart", started, start_daily, "3"),
            ("start (new call), back to back", burst, burst_daily, "3"),
            ("join", joined, join_daily, "2"),
            ("start on a running call", again, again_daily, "–"),
            ("end_meeting, empty room, back to back", ended, end_daily, "–"),
            ("end_meeting, empty room, 0.6 s apart", paced, paced_daily, "–")):
        calls = sum(daily.values())
        rows.append([what, result.count, calls, f"{calls / result.count:.2f}", original,
                     ", ".join(f"{k} {v}" for k, v in sorted(daily.items())) or "none",
                     ms(percentile(result.latencies, 50)), ms(percentile(result.latencies, 99)),
                     ratio(percentile(result.latencies, 50), join_p50)])
    b.stop_bridge(bridge)
    b.out.append("### Daily calls per request and start latency\n")
    b.out.append("Counted at the Daily emulator; one client, requests in sequence. The bridge keeps to Daily's "
                 "limits (20 requests/s, 2 room deletes/s): back-to-back starts are paced at 50 ms; "
                 "end_meeting answers once the end is durable and the room DELETE follows in the background.\n")
    b.out.append(table(["request", "requests", "Daily calls", "per request", "original", "endpoints",
                        "p50 ms", "p99 ms", "p50 × join p50"], rows))
    b.out.append("")


def _group_of(b: Bench, req: Req) -> str:
    import base64

    payload = req.headers["x-auth-jwt"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims["chat_id"]["Group"]


# ---- 2b. decline and leave latency ----------------------------------------------------------------

LUI = "nq4qv-wqaaa-aaaaf-bhdgq-cai"  # a local user index canister


async def section_exits(b: Bench) -> None:
    """Decline and leave (SPEC §9) against a zero-latency emulator, next to a bare 204 endpoint.

    Android gives each request 3 s. Every decline/leave reads Daily presence (and a leave ejects),
    so requests for distinct rooms are paced to Daily's 20 requests/s, as starts are: that limit
    is Daily's, not what we time. Repeated requests for one room share one presence read.
    """
    log_step("decline and leave: starting calls")
    n = 40 if b.quick else 100
    n_direct = 15 if b.quick else 30
    bridge = b.bridge(b.tmp / "exits-state.json", "exits")
    bare = Proc("bare", "--body-size", "2")
    b.procs.append(bare)
    exp = int(time.time()) + 3600
    sign = b.signer.video_call_token
    rows = []
    async with session(16) as http:
        async def start(chats: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
            reqs = [Req("GET", f"/room/meeting_access_token?initiator-username=starter{i}",
                        {"x-auth-jwt": sign("StartVideoCall", user_id=STARTER, chat_id=chat, exp=exp + i)})
                    for i, chat in enumerate(chats)]
            result = await run(http, bridge.url, reqs, 1, keep_bodies=True)  # in order: answers match chats
            check(result, "exits starts")
            calls = [json.loads(body) for body in result.bodies]
            for call in calls:  # the starter is in the room, as in a real call
                async with http.post(f"{b.emulator.url}/_emulator/rooms/{call['roomName']}/join",
                                     json={"token": call["token"]}) as resp:
                    call["sessionId"] = (await resp.json())["session_id"]
            return calls

        groups = [{"Group": g} for g in principals(2 * n + 1, b.next_seed())]
        peers = principals(n_direct, b.next_seed())
        declined, left, _shared = await start(groups[:n]), await start(groups[n:2 * n]), await start(groups[2 * n:])
        direct = await start([{"Direct": peer} for peer in peers])
        ringing = principals(n, b.next_seed())
        plans: list[tuple[str, str, list[Req], float, int]] = [
            ("bare aiohttp endpoint (204, same body)", bare.url,
             [Req("POST", "/room/leave", {"x-auth-jwt": "x"}, json.dumps({"sessionId": str(uuid.uuid4())}).encode())
              for _ in range(n)], 0.0, 1),
            ("decline, group (distinct rooms)", bridge.url,
             [Req("POST", "/room/decline", {"x-auth-jwt": sign(
                 "DeclineVideoCall", user_id=ringing[i], chat_id=groups[i], exp=exp,
                 message_id=call["messageId"], local_user_index=LUI)}) for i, call in enumerate(declined)],
             START_PACE, 1),
            ("decline, group (one room, 16 clients)", bridge.url,
             [Req("POST", "/room/decline", {"x-auth-jwt": sign(
                 "VideoCallParticipant", user_id=user, chat_id=groups[2 * n], exp=exp, local_user_index=LUI)})
              for user in ringing], 0.0, 16),
            ("leave with sessionId (distinct rooms)", bridge.url,
             [Req("POST", "/room/leave", {"x-auth-jwt": sign(
                 "VideoCallParticipant", user_id=STARTER, chat_id=groups[n + i], exp=exp, local_user_index=LUI),
                 "Content-Type": "application/json"}, json.dumps({"sessionId": call["sessionId"]}).encode())
              for i, call in enumerate(left[: n // 2])], 2 * START_PACE, 1),
            ("leave, no body (distinct rooms)", bridge.url,
             [Req("POST", "/room/leave", {"x-auth-jwt": sign(
                 "JoinVideoCall", user_id=STARTER, chat_id=groups[n + n // 2 + i], exp=exp)})
              for i in range(n - n // 2)], 2 * START_PACE, 1),
            ("decline, direct (ends the call)", bridge.url,
             [Req("POST", "/room/decline", {"x-auth-jwt": sign(
                 "DeclineVideoCall", user_id=peer, chat_id={"Direct": STARTER}, exp=exp,
                 message_id=call["messageId"], local_user_index=LUI)}) for peer, call in zip(peers, direct)],
             START_PACE, 1),
        ]
        bare_p50 = bare_p99 = bare_cpu = float("nan")
        for what, url, reqs, pace, clients in plans:
            log_step(f"exits: {what}")
            await asyncio.sleep(1.0)  # the previous row's background work (outbox, room deletes) settles first
            warm = reqs[:1] if url == bare.url else []
            if warm:
                await run(http, url, warm, 1)
            pid = bare.proc.pid if url == bare.url else bridge.pid
            before, cpu = await b.daily_requests(http), proc_cpu(pid)
            result = await (run_paced(http, url, reqs, pace) if pace else run(http, url, reqs, clients))
            cpu = proc_cpu(pid) - cpu
            after = await b.daily_requests(http)
            check(result, what, ok=(204,))
            daily = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
            calls = sum(daily.values())
            p50, p99 = percentile(result.latencies, 50), percentile(result.latencies, 99)
            if url == bare.url:
                bare_p50, bare_p99 = p50, p99
            if url == bare.url:
                bare_cpu = cpu / result.count
            rows.append([what, clients, result.count, f"{calls / result.count:.2f}",
                         ", ".join(f"{k} {v}" for k, v in sorted(daily.items())) or "none",
                         ms(p50), ms(p99), ms(max(result.latencies)), ratio(p50, bare_p50), ratio(p99, bare_p99),
                         f"{cpu / result.count * 1e6:.0f}", ratio(cpu / result.count, bare_cpu)])
    b.stop_bridge(bridge)
    worst = max(float(r[6]) for r in rows[1:])
    b.out.append("### Decline and leave latency\n")
    tracked = 2 * n + 1 + n_direct
    b.out.append(f"Against a zero-latency Daily emulator (its own process), {tracked} calls tracked (each durable "
                 "write appends one journal record, see the growth table); one client in sequence unless said, "
                 f"requests for distinct rooms paced {START_PACE * 1000:.0f} ms apart (leave: "
                 f"{2 * START_PACE * 1000:.0f} ms, it makes two Daily calls) so that Daily's 20 requests/s is not "
                 "what is timed. Every answer is 204; a group decline is durable (state file, fsync) before it; "
                 "a direct decline ends the call as an end does (the room DELETE follows in the background). "
                 "Server CPU counts the bridge process only (the emulator answers in its own), including the "
                 "row's own background work such as the outbox settling a group decline's notification (a second "
                 "state write).\n")
    b.out.append(table(["request", "clients", "requests", "Daily calls per request", "endpoints", "p50 ms",
                        "p99 ms", "max ms", "p50 × bare", "p99 × bare", "server CPU µs/request", "CPU × bare"], rows))
    b.out.append(f"\nWorst p99 of the bridge's rows: **{worst:.1f} ms** (target < 50 ms; Android waits 3 s).\n")


# ---- 3. growth ----------------------------------------------------------------------------------

async def loop_gap(work: Any) -> float:
    """The longest the event loop went without running while `work` ran (a 0.5 ms ticker)."""
    gaps = [0.0]
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.0005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await work
    done.set()
    await task
    return max(gaps)


def call_maker(seed: int, state: str = "starting") -> Callable[[str], Any]:
    """Tracked calls as a start makes them (one per group), for pre-populating a store."""
    from videobridge.chats import GroupChat, room_name
    from videobridge.models import Call, CallState, CallType, Initiator

    now = time.time()
    rng = random.Random(seed)

    def call(group: str) -> Call:
        return Call(room_name=room_name(GroupChat(group)), message_id=rng.getrandbits(63) + 1,
                    chat=GroupChat(group), call_type=CallType.DEFAULT, started_by=STARTER,
                    initiator=Initiator(username="alice", display_name="Alice"), is_diamond=False,
                    state=CallState(state), created_at=now, room_exp=int(now) + 3600)

    return call


async def populate(path: Path, n: int, seed: int, *,
                   state: str = "starting") -> tuple[list[str], list[float], tuple[float, float]]:
    """Write n tracked calls in one batch through the store (not n HTTP starts); then time
    single-call commits, and one snapshot write as the background compaction does it."""
    from videobridge.state.filestore import Change, FileStore
    from videobridge.state.snapshot import atomic_write, snapshot_chunks

    groups = principals(n + 20, seed)
    call = call_maker(seed, state)
    store = FileStore(path)
    store.open()
    try:
        await store.commit(Change(put_calls=[call(g) for g in groups[:n]]))
        compactor = getattr(store._storage, "_compactor", None)
        if compactor is not None:  # the prefill's one big record starts a compaction: not what we time
            compactor.join()
        write_times = []
        for extra in groups[n:]:  # one start's write (the call and its notification), then its removal
            c = call(extra)
            t = time.perf_counter()
            await store.commit(Change(put_calls=[c]))
            write_times.append(time.perf_counter() - t)
            await store.commit(Change(drop_calls=[c.room_name]))
        assert store._storage is not None
        scratch = path.with_name(path.name + ".bench")
        t = time.perf_counter()  # a compaction as the background thread does it, while the loop ticks
        gap = await loop_gap(asyncio.to_thread(atomic_write, scratch, snapshot_chunks(store._storage._members, 0)))
        compaction = (time.perf_counter() - t, gap)
        scratch.unlink()
    finally:
        await store.aclose()
    return groups[:n], write_times, compaction


async def populate_redis(url: str, n: int, seed: int) -> tuple[list[str], list[float], tuple[float, float, float, float]]:
    """populate() for the Redis store: n calls in one commit (one Lua script), then single-call
    commits timed as for the file store (no room lock taken: the commit alone); then one reload
    of the views as every instance does it every VIEW_INTERVAL (HGETALL of both hashes, decoded)."""
    from videobridge.state.base import Change
    from videobridge.state.redisstore import RedisStore

    groups = principals(n + 20, seed)
    call = call_maker(seed)
    store = RedisStore(url)
    await store.aopen()
    try:
        await store.commit(Change(put_calls=[call(g) for g in groups[:n]]))
        write_times = []
        for extra in groups[n:]:
            c = call(extra)
            t = time.perf_counter()
            await store.commit(Change(put_calls=[c]))
            write_times.append(time.perf_counter() - t)
            await store.commit(Change(drop_calls=[c.room_name]))
        reloads = []  # cold: every document new to this instance; steady: the next reload
        for _ in range(2):
            t = time.perf_counter()
            gap = await loop_gap(store.refresh())
            reloads.append((time.perf_counter() - t, gap))
        reload = (*reloads[1], *reloads[0])
    finally:
        await store.aclose()
    return groups[:n], write_times, reload


GROWTH = {"file": (10, 100, 1000, 10000), "redis": (10, 1000, 10000)}


async def section_growth(b: Bench) -> None:
    from videobridge.state.redisstore import VIEW_INTERVAL

    sizes = sorted({n for ns in GROWTH.values() for n in ns})
    n_join = 150 if b.quick else 400
    n_start = 10 if b.quick else 40
    rows = []
    base: dict[str, dict[str, float]] = {}
    found: dict[tuple[str, int], dict[str, float]] = {}
    redis = b.redis("growth")
    assert redis.proc is not None
    redis_rss = float("nan")
    for n in sizes:  # the stores side by side at each size, so drift on a shared box hits both alike
        for store in ("file", "redis"):
            if n not in GROWTH[store]:
                continue
            log_step(f"growth: {n} tracked calls, {store} store")
            if store == "file":
                path = b.tmp / f"growth-{n}.json"
                groups, writes, (compact, compact_gap) = await populate(path, n, b.next_seed())
                size_kib = path.stat().st_size / 1024
                bridge = b.bridge(path, f"growth-{n}")
                compaction, view = f"{ms(compact)} ({ms(compact_gap)})", "n/a"
            else:
                redis.flush()
                aof = dir_bytes(redis.directory)  # the AOF keeps earlier sizes until a rewrite
                groups, writes, (reload, reload_gap, cold, cold_gap) = await populate_redis(
                    redis.url, n, b.next_seed())
                size_kib = (dir_bytes(redis.directory) - aof) / 1024
                bridge = b.bridge(b.tmp / f"growth-redis-{n}-unused.json", f"growth-redis-{n}",
                                  VIDEOBRIDGE_STORE=redis.url)
                compaction, view = "n/a", f"{ms(reload)} ({ms(reload_gap)}); cold {ms(cold)} ({ms(cold_gap)})"
            async with session(4) as http:
                check(await run(http, bridge.url, b.joins(groups[0], 50), 1), "warm")
                joins = await run(http, bridge.url, b.joins(groups[0], n_join), 1)
                check(joins, "growth joins")
                start_reqs = b.starts(n_start)
                side_joins = b.joins(groups[-1], 5000)
                side = Result()
                done = asyncio.Event()

                async def joiner() -> None:
                    i = 0
                    while not done.is_set() and i < len(side_joins):
                        r = await run(http, bridge.url, side_joins[i:i + 1], 1)
                        side.latencies += r.latencies
                        side.statuses.update(r.statuses)
                        i += 1

                task = asyncio.create_task(joiner())
                starts = await run_paced(http, bridge.url, start_reqs, START_PACE)
                done.set()
                await task
                check(starts, "growth starts")
                check(side, "joins during starts")
            rss = bridge.rss_kib() / 1024
            if store == "redis" and n == GROWTH["redis"][-1]:
                with open(f"/proc/{redis.proc.pid}/status") as fh:
                    redis_rss = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024
            ready = bridge.ready_seconds
            b.stop_bridge(bridge)
            j50 = percentile(joins.latencies, 50)
            s50 = percentile(starts.latencies, 50)
            w50 = statistics.median(writes)
            if n == GROWTH[store][0]:
                base[store] = {"join": j50, "start": s50, "write": w50, "ready": ready}
            found[store, n] = {"join": j50 / base[store]["join"], "start": s50 / base[store]["start"],
                               "write": w50 / base[store]["write"], "rss": rss}
            rows.append([store, f"{n:,}", f"{size_kib:,.0f}", ms(w50), ratio(w50, base[store]["write"]),
                         f"{ready:.2f}", ms(j50), ms(percentile(joins.latencies, 99)),
                         ratio(j50, base[store]["join"]), ms(s50), ms(percentile(starts.latencies, 99)),
                         ratio(s50, base[store]["start"]), ms(percentile(side.latencies, 99)),
                         ms(max(side.latencies, default=float("nan"))), f"{rss:.0f}", compaction, view])
    b.stop_redis(redis)

    def verdict(store: str) -> str:
        def at(n: int, what: str) -> str:
            return f"{found[store, n][what]:.2f}×"
        return (f"**{store} store**: join p50 at 1,000 calls = {at(1000, 'join')} that at 10 (target ≤ 1.5×); "
                f"at 10,000: {at(10000, 'join')}. Start p50 at 10,000 = {at(10000, 'start')} that at 10 "
                f"(target ≤ 1.5×); one durable write at 10,000 = {at(10000, 'write')} that at 10; "
                f"bridge RSS at 10,000 calls {found[store, 10000]['rss']:.0f} MiB")

    b.out.append("### Growth with the number of tracked calls\n")
    b.out.append(f"Both stores at 10, 1,000 and 10,000 tracked calls (the file store at 100 too: it costs a few "
                 f"seconds); each size's rows side by side, \"× @10\" against the same store at 10. "
                 f"State pre-populated through the store in one batch (file: FileStore, one journal record; "
                 f"Redis: RedisStore, one commit, i.e. one Lua script; Redis is flushed between sizes); "
                 f"state KiB = the state file, or for Redis what the pre-population added to its AOF (appendfsync always); "
                 f"write = one start's durable commit "
                 f"(median of 20, in-process; file: one journal record of the changed documents + fdatasync; "
                 f"Redis: the commit script, answered after Redis's fsync, without the room lock a start takes); "
                 f"compaction (file store only) = the snapshot the background thread writes when the journal "
                 f"outgrows the file "
                 f"(in-process, in a thread; in brackets the longest the event loop went without running "
                 f"meanwhile, against a 0.5 ms ticker); view reload (Redis store only) = what every instance does "
                 f"every {VIEW_INTERVAL:.0f} s and the leader before each poll: the calls in HSCAN chunks, "
                 f"the outbox with HGETALL, only changed documents decoded (in-process, loop gap likewise; "
                 f"cold = an instance's first reload after every document is new to it); "
                 f"joins: {n_join} in sequence; starts: {n_start} new calls, {START_PACE * 1000:.0f} ms apart, "
                 f"while a second client joins in a loop.\n")
    b.out.append(table(["store", "tracked calls", "state KiB", "write ms", "× @10", "serve ready s", "join p50 ms",
                        "join p99 ms", "× @10", "start p50 ms", "start p99 ms", "× @10",
                        "join p99 during starts ms", "join max during starts ms", "RSS MiB",
                        "compaction ms (loop gap ms)", "view reload ms (loop gap ms)"], rows))
    b.out.append("\n" + verdict("file") + ". " + verdict("redis") +
                 f" (redis-server's own RSS then: {redis_rss:.0f} MiB).\n")


# ---- 4. presence reconciliation CPU ------------------------------------------------------------------

async def section_presence(b: Bench) -> None:
    from videobridge.calls import CallService
    from videobridge.daily import DailyClient
    from videobridge.notifier import LoggingNotifier
    from videobridge.outbox import Outbox
    from videobridge.poller import PresencePoller
    from videobridge.state.filestore import FileStore

    rows = []
    for n in (10, 1000, 10000):
        log_step(f"presence: {n} tracked calls")
        measures: dict[str, tuple[float, float, int]] = {}
        for state in ("live", "starting"):
            path = b.tmp / f"presence-{n}-{state}.json"
            await populate(path, n, b.next_seed(), state=state)
            store = FileStore(path)
            store.open()
            outbox = Outbox(store=store, notifier=LoggingNotifier())
            calls = CallService(store=store, rooms=None, minter=None, outbox=outbox)  # type: ignore[arg-type]
            now = datetime.now().isoformat()
            body = json.dumps({room: [{"room": room, "id": str(uuid.uuid4()), "userId": STARTER, "userName": "alice",
                                       "mtgSessionId": str(uuid.uuid4()), "joinTime": now, "duration": 42}]
                               for room in store.calls}).encode()
            daily = DailyClient(api_key=API_KEY, base_url="http://127.0.0.1:9")

            async def answer(*_: Any, **__: Any) -> Any:
                return json.loads(body)

            daily._call = answer  # type: ignore[method-assign]  # the real parsing, minus the socket
            poller = PresencePoller(daily=daily, calls=calls, interval=15.0)
            try:
                if state == "live":
                    await poller.poll_once()  # warm
                    polls = 20 if n < 10000 else 5
                    cpu, wall = time.process_time(), time.perf_counter()
                    for _ in range(polls):
                        await poller.poll_once()
                    measures[state] = ((time.process_time() - cpu) / polls, (time.perf_counter() - wall) / polls,
                                       store.writes)
                else:  # after a restart every call is still "starting": one poll makes them all live
                    writes = store.writes
                    cpu, wall = time.process_time(), time.perf_counter()
                    await poller.poll_once()
                    measures[state] = (time.process_time() - cpu, time.perf_counter() - wall, store.writes - writes)
            finally:
                await daily.close()
                await store.aclose()
        live_cpu = measures["live"][0]
        first_cpu, first_wall, first_writes = measures["starting"]
        rows.append([f"{n:,}", ms(live_cpu), f"{live_cpu / n * 1e6:.1f}", ms(first_cpu), ms(first_wall),
                     first_writes])
    b.out.append("### Presence reconciliation CPU per poll\n")
    b.out.append("In-process: the real DailyClient.presence parsing of a Daily-shaped body (every call "
                 "occupied by one participant) plus CallService.reconcile; no socket. \"First poll\" is the one "
                 "after a restart, when every tracked call is still `starting` and goes live.\n")
    b.out.append(table(["tracked calls", "CPU ms per steady poll", "µs per call", "first poll CPU ms",
                        "first poll wall ms", "first poll state writes"], rows))
    b.out.append("")


# ---- 5. webhook, start-up, --help ----------------------------------------------------------------

async def section_webhook(b: Bench) -> None:
    from videobridge.webhooks.signature import sign

    log_step("webhook meeting.ended -> end notification queued")
    bridge = b.bridge(b.tmp / "webhook-state.json", "webhook")
    n = 20 if b.quick else 60
    tail = LogTail(bridge.log_path, b'"call_ended"', b'"ic_notification_skipped"')
    answers, queued, handed = [], [], []
    async with session(4) as http:
        start_reqs = b.starts(n)
        started = await run(http, bridge.url, start_reqs, 1, keep_bodies=True)
        check(started, "webhook starts")
        for body in started.bodies:
            answer = json.loads(body)
            room, message_id = answer["roomName"], answer["messageId"]
            event = json.dumps({"version": "1.0.0", "type": "meeting.ended", "id": str(uuid.uuid4()),
                                "event_ts": time.time(), "payload": {"room": room, "meeting_id": str(uuid.uuid4()),
                                                                      # its meeting began after the start
                                                                      "start_ts": time.time(),
                                                                      "end_ts": time.time()}},
                               separators=(",", ":")).encode()
            ts = str(int(time.time()))
            headers = {"X-Webhook-Timestamp": ts, "X-Webhook-Signature": sign(HOOK_SECRET, ts, event),
                       "Content-Type": "application/json"}
            sent = time.time()
            t0 = time.perf_counter()
            async with http.post(bridge.url + "/room/hook", data=event, headers=headers) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            answers.append(time.perf_counter() - t0)
            got: dict[str, float] = {}
            deadline = time.monotonic() + 10
            while len(got) < 2 and time.monotonic() < deadline:
                for entry in tail.read():
                    if entry.get("event") == "call_ended" and entry.get("room") == room:
                        got["queued"] = iso_to_epoch(entry["timestamp"])
                    if (entry.get("event") == "ic_notification_skipped" and entry.get("message_id") == message_id
                            and entry.get("method") == "end_video_call_v2"):
                        got["handed"] = iso_to_epoch(entry["timestamp"])
                await asyncio.sleep(0.0005)
            if len(got) < 2:
                raise SystemExit(f"no end notification for {room}; log tail:\n{bridge.log_tail()}")
            queued.append(got["queued"] - sent)
            handed.append(got["handed"] - sent)
            await asyncio.sleep(0.55)  # Daily's DELETE limit is 2/s: keep room deletes from queueing up
    b.stop_bridge(bridge)
    rtt = b.bare_rtt
    rows = [["hook answered (200)", n, ms(percentile(answers, 50)), ms(percentile(answers, 99)),
             ratio(percentile(answers, 50), rtt)],
            ["end notification queued (durable)", n, ms(percentile(queued, 50)), ms(percentile(queued, 99)),
             ratio(percentile(queued, 50), rtt)],
            ["end notification handed to the notifier", n, ms(percentile(handed, 50)), ms(percentile(handed, 99)),
             ratio(percentile(handed, 50), rtt)]]
    b.out.append("### Webhook `meeting.ended` → end notification\n")
    b.out.append("From sending the signed webhook (wall clock) to the bridge's `call_ended` log line (written "
                 "after the end notification is committed to the state file) and to the notifier's log line; "
                 "ratios against the bare endpoint's round trip at 1 client" +
                 (f" ({ms(rtt)} ms)" if rtt == rtt else " (join section not run)") + ".\n")
    b.out.append(table(["measure", "samples", "p50 ms", "p99 ms", "p50 × bare RTT"], rows))
    b.out.append("")


async def section_startup(b: Bench) -> None:
    log_step("start-up times")
    reps = 3 if b.quick else 7

    def timed(cmd: list[str]) -> float:
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=b.tmp)
        return time.perf_counter() - t

    cli = str(Path(PYTHON).parent / "videobridge")
    measures: dict[str, list[float]] = {"python -c pass": [], "python -c 'import aiohttp'": [],
                                         "videobridge --help": [], "serve → READY=1 (empty state)": []}
    for _ in range(reps):
        measures["python -c pass"].append(timed([PYTHON, "-c", "pass"]))
        measures["python -c 'import aiohttp'"].append(timed([PYTHON, "-c", "import aiohttp"]))
        measures["videobridge --help"].append(timed([cli, "--help"]))
        state = b.tmp / f"startup-{uuid.uuid4().hex}.json"
        daemon = b.bridge(state, "startup")
        measures["serve → READY=1 (empty state)"].append(daemon.ready_seconds)
        b.stop_bridge(daemon)
    base = statistics.median(measures["python -c pass"])
    rows = [[what, f"{statistics.median(v) * 1000:.0f}", f"{max(v) * 1000:.0f}", ratio(statistics.median(v), base)]
            for what, v in measures.items()]
    b.out.append("### Start-up\n")
    b.out.append(f"Median of {reps} runs each (process spawn to exit, or to the READY=1 sd_notify datagram).\n")
    b.out.append(table(["command", "median ms", "max ms", "× python -c pass"], rows))
    b.out.append("")


# ---- 6. failover (Redis store) ------------------------------------------------------------------

async def leader_of(http: aiohttp.ClientSession, daemons: Sequence[Daemon], timeout: float) -> tuple[Daemon, Daemon]:
    """(leader, follower) of two instances, once exactly one says `"leader": true` on /readyz."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leading = []
        for daemon in daemons:
            async with http.get(daemon.url + "/readyz") as resp:
                leading.append(bool((await resp.json())["leader"]))
        if leading.count(True) == 1:
            i = leading.index(True)
            return daemons[i], daemons[1 - i]
        await asyncio.sleep(0.1)
    raise SystemExit("failover: no single leader among the two instances")


async def section_failover(b: Bench) -> None:
    """Two instances on one Redis; the IC hangs while starts queue their notifications; SIGKILL
    the leader, heal the IC, and time the other instance's takeover and first delivery."""
    import redis as redis_py
    from fakeic import FakeIC
    from rel_support import ic_identity

    from videobridge.models import CanisterKind
    from videobridge.state.redisstore import LEASE_TTL, PREFIX, read_redis

    reps = 1 if b.quick else 3
    n_starts = 4
    rows = []
    elected: list[float] = []
    firsts: list[float] = []
    alls: list[float] = []
    reactions: list[float] = []
    rng = random.Random(b.next_seed())
    for rep in range(reps):
        log_step(f"failover: repetition {rep + 1}/{reps}")
        redis = b.redis(f"failover-{rep}")
        pem, operator = ic_identity()
        fake = FakeIC(operators={operator}).start()
        daemons: list[Daemon] = []
        lease = redis_py.Redis.from_url(redis.url, socket_timeout=5.0)
        try:
            groups = principals(n_starts, b.next_seed())
            for group in groups:
                fake.add_canister(group, CanisterKind.GROUP)
            fake.hang()  # deliveries start and never finish: the notifications stay queued
            extra = {"IC_URL": fake.url, "OC_IDENTITY": pem, "VIDEOBRIDGE_IC_ROOT_KEY": fake.root_key_hex,
                     "VIDEOBRIDGE_STORE": redis.url}
            daemons = [b.bridge(b.tmp / f"failover-{rep}-unused.json", f"failover-{rep}-{i}", **extra)
                       for i in (0, 1)]
            async with session(4) as http:
                leader, follower = await leader_of(http, daemons, LEASE_TTL + 5)
                for i, group in enumerate(groups):  # on both instances: any instance answers
                    check(await run(http, (leader, follower)[i % 2].url, [b.start_for(group)], 1), "failover start")
                deadline = time.monotonic() + 10
                while len(read_redis(redis.url)[1]) < n_starts:
                    if time.monotonic() > deadline:
                        raise SystemExit("failover: the start notifications were not queued")
                    await asyncio.sleep(0.05)
                deadline = time.monotonic() + 5
                while fake.requests == 0 and time.monotonic() < deadline:  # the leader is mid-delivery
                    await asyncio.sleep(0.05)
                # kill at a random point of the renewal cycle, else every repetition hits the same phase
                await asyncio.sleep(rng.uniform(0, LEASE_TTL / 3))
                tail = LogTail(follower.log_path, b'"leader_elected"', b'"notification_settled"')
                left = lease.pttl(PREFIX + "leader") / 1000  # what is left of the lease as it is killed
                killed = time.time()
                leader.kill()  # SIGKILL: no lease release, no goodbye
                fake.heal()
                got: dict[str, float] = {}
                settled = 0
                deadline = time.monotonic() + LEASE_TTL + 20
                while settled < n_starts:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"failover: {settled}/{n_starts} delivered; log tail:\n{follower.log_tail()}")
                    for entry in tail.read():
                        if entry.get("event") == "leader_elected":
                            got.setdefault("elected", iso_to_epoch(entry["timestamp"]) - killed)
                        elif entry.get("event") == "notification_settled":
                            if entry.get("outcome") != "success":
                                raise SystemExit(f"failover: a delivery failed: {entry}")
                            got.setdefault("first", iso_to_epoch(entry["timestamp"]) - killed)
                            settled += 1
                            got["all"] = iso_to_epoch(entry["timestamp"]) - killed
                    await asyncio.sleep(0.02)
                async with http.get(follower.url + "/readyz") as resp:
                    if not (await resp.json())["leader"]:
                        raise SystemExit("failover: the survivor does not lead")
        finally:
            for daemon in daemons:
                b.stop_bridge(daemon)
            fake.stop()
            lease.close()
            b.stop_redis(redis)
        elected.append(got["elected"])
        firsts.append(got["first"])
        alls.append(got["all"])
        reactions.append(got["elected"] - left)
        rows.append([rep + 1, f"{left:.2f}", f"{got['elected']:.2f}", f"{got['elected'] - left:.3f}",
                     f"{got['first']:.2f}", f"{got['all']:.2f}", ratio(got["first"], LEASE_TTL)])
    first = statistics.median(firsts)
    rows.append(["median", "", f"{statistics.median(elected):.2f}", f"{statistics.median(reactions):.3f}",
                 f"{first:.2f}", f"{statistics.median(alls):.2f}", ratio(first, LEASE_TTL)])
    b.out.append("### Failover (Redis store)\n")
    b.out.append(f"Two `serve` instances on one redis-server (fresh for each of {reps} repetition(s)), a fake IC "
                 f"boundary node hanging while {n_starts} starts (on both instances) queue their notifications; "
                 f"then SIGKILL the leader (no lease release) and heal the IC. Seconds from the SIGKILL (wall clock) "
                 f"to the survivor's `leader_elected` and `notification_settled` log lines (their timestamps). "
                 f"Leader lease TTL {LEASE_TTL:.0f} s, renewed every {LEASE_TTL / 3:.1f} s: a killed leader's lease "
                 f"runs out {LEASE_TTL * 2 / 3:.1f}–{LEASE_TTL:.0f} s after the kill, depending on when it last "
                 f"renewed, so the kill comes at a random point of that cycle (\"lease left\": the lease key's "
                 f"PTTL read just before the kill; \"taken − left\": how long after the expiry the standby took "
                 f"it).\n")
    b.out.append(table(["repetition", "lease left at SIGKILL s", "lease taken s", "taken − left s",
                        "first delivery s", f"all {n_starts} delivered s", "first delivery × TTL"], rows))
    b.out.append(f"\nMedian SIGKILL → first delivery by the new leader: **{first:.2f} s** against a lease TTL of "
                 f"{LEASE_TTL:.0f} s.\n")


# ---- main ---------------------------------------------------------------------------------------

async def main_async(args: argparse.Namespace) -> None:
    from videobridge.logs import configure_logging

    configure_logging(fmt="json", level="info", stream=open(os.devnull, "w"))  # in-process parts log too
    chosen = [s for s in SECTIONS if s in set(args.only.split(","))] if args.only else list(SECTIONS)
    with tempfile.TemporaryDirectory(prefix="vb-bench-") as tmp:
        b = Bench(args.quick, Path(tmp), [int(n) for n in args.clients.split(",")])
        funcs: dict[str, Callable[[Bench], Any]] = {
            "join": section_join, "costs": section_costs, "daily": section_daily, "exits": section_exits,
            "growth": section_growth,
            "presence": section_presence, "webhook": section_webhook, "startup": section_startup,
            "failover": section_failover}
        started = time.perf_counter()
        try:
            for name in chosen:
                await funcs[name](b)
        finally:
            b.close()
        elapsed = time.perf_counter() - started
    import aiohttp as aio
    import jwt as pyjwt
    import tinydb
    head = (f"## videobridge benchmarks ({'quick' if args.quick else 'full'} run)\n\n"
            f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, "
            f"aiohttp {aio.__version__}, PyJWT {pyjwt.__version__}, TinyDB {tinydb.__version__}; "
            f"{platform.machine()} {platform.system()} {platform.release()}; run took {elapsed:.0f} s.\n"
            f"Command: `python tests/bench/run.py{' --quick' if args.quick else ''}"
            f"{' --only ' + args.only if args.only else ''}"
            f"{' --clients ' + args.clients if args.clients != DEFAULT_CLIENTS else ''}`\n")
    print(head)
    print("\n".join(b.out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller samples, one round")
    parser.add_argument("--only", default="", help=f"comma-separated sections: {','.join(SECTIONS)}")
    parser.add_argument("--clients", default=DEFAULT_CLIENTS,
                        help="the join section's concurrency levels, comma-separated (32 must be among them)")
    args = parser.parse_args()
    if "32" not in args.clients.split(","):
        parser.error("--clients must include 32 (the summary compares the targets there)")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
