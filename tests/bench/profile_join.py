#!/usr/bin/env python
"""Where does a join's time go? Samples the `serve` process with py-spy under join load.

    pip install py-spy            # into the venv; not a project dependency
    python tests/bench/profile_join.py [--clients 32] [--seconds 8] [--top 40]

Prints the functions with the most samples, self and inclusive (the process is single-threaded
on its event loop, so samples are a fair picture of CPU per join). `--raw` keeps py-spy's
collapsed stacks for a flame graph.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from loadgen import run, session  # noqa: E402
from rel_support import principals  # noqa: E402
from run import Bench, check  # noqa: E402


def summarize(raw: Path, top: int) -> str:
    self_count: collections.Counter[str] = collections.Counter()
    incl_count: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        total += count
        if frames:
            self_count[_short(frames[-1])] += count
        for name in {_short(f) for f in frames}:
            incl_count[name] += count
    lines = [f"{total} samples", "", "self %   function"]
    lines += [f"{100 * c / total:6.1f}   {name}" for name, c in self_count.most_common(top)]
    lines += ["", "incl %   function"]
    lines += [f"{100 * c / total:6.1f}   {name}" for name, c in incl_count.most_common(top)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py:123)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, lineno = where.rpartition(":")
    parts = path.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({short})"


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="vb-prof-") as tmp:
        b = Bench(quick=True, tmp=Path(tmp))
        try:
            group = principals(1, 1)[0]
            bridge = b.bridge(Path(tmp) / "state.json", "prof")
            async with session(4) as http:
                check(await run(http, bridge.url, [b.start_for(group)], 1), "start")
            rate = 1300  # roughly what the bridge does; enough tokens for the window
            reqs = b.joins(group, int(rate * (args.seconds + 3)))
            async with session(args.clients) as http:
                check(await run(http, bridge.url, reqs[:1000], args.clients), "warm")
                raw = Path(args.raw or Path(tmp) / "raw.txt")
                spy = subprocess.Popen(["py-spy", "record", "--pid", str(bridge.pid), "--duration",
                                        str(args.seconds), "--rate", "250", "--gil", "--format", "raw", "-o", str(raw)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                t = time.perf_counter()
                result = await run(http, bridge.url, reqs[1000:], args.clients)
                elapsed = time.perf_counter() - t
                spy.wait(60)
            print(f"{result.count} joins in {elapsed:.1f}s = {result.throughput:.0f}/s, errors {result.errors()}")
            print(summarize(raw, args.top))
        finally:
            b.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--raw", default="")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
