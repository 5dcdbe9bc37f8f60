"""Baseline servers for the join benchmark, each run as its own process by run.py.

    python tests/bench/targets.py bare  --body-size N
    python tests/bench/targets.py floor --pem-file F --api-key K --room R
    python tests/bench/targets.py emulator --api-key K

`bare`  answers every request with a fixed JSON body of N bytes (decline and leave: 204, no
        body): aiohttp's own limit.
`floor` does only the unavoidable work of a join with the libraries the bridge uses: verify the
        request's ES256 JWT (PyJWT + cryptography) and sign an HS256 Daily meeting token (PyJWT).
`emulator` serves the Daily emulator (a third process, so its work never competes with the
        bridge or the load generator for the same interpreter).

Each prints `PORT <n>` on stdout once listening, then serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time

from aiohttp import web


def bare_app(body_size: int) -> web.Application:
    filler = max(0, body_size - len('{"token":""}'))
    body = json.dumps({"token": "x" * filler}, separators=(",", ":")).encode()

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def no_content(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/room/meeting_access_token", handle)
    app.router.add_post("/room/decline", no_content)  # decline and leave answer 204 with no body
    app.router.add_post("/room/leave", no_content)
    return app


def floor_app(pem: str, api_key: str, room: str, domain_id: str) -> web.Application:
    import jwt
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key = load_pem_public_key(pem.encode())
    dumps = json.JSONEncoder(separators=(",", ":")).encode

    async def handle(request: web.Request) -> web.Response:
        token = request.headers.get("x-auth-jwt")
        try:
            claims = jwt.decode(token or "", key, algorithms=["ES256"])
        except jwt.PyJWTError:
            return web.Response(status=401)
        now = int(time.time())
        meeting = jwt.encode({"r": room, "d": domain_id, "iat": now, "exp": now + 3600,
                              "ud": claims["user_id"][:36], "u": request.query.get("initiator-username", ""),
                              "o": False, "p": {"hp": True, "cs": True, "ca": False}},
                             api_key, algorithm="HS256")
        body = {"token": meeting, "roomName": room, "messageId": "12345678901234567890", "joining": True}
        return web.Response(body=dumps(body).encode(), content_type="application/json")

    app = web.Application()
    app.router.add_get("/room/meeting_access_token", handle)
    return app


async def serve(app: web.Application, *, extra: str = "") -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    print(f"PORT {port}{extra}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await runner.cleanup()


async def serve_emulator(api_key: str) -> None:
    from videobridge.emulator import DailyEmulator

    emulator = DailyEmulator(api_key=api_key)
    url = await emulator.start("127.0.0.1", 0)
    print(f"PORT {url.rsplit(':', 1)[1]} {emulator.domain_id}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await emulator.stop()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["bare", "floor", "emulator"])
    parser.add_argument("--body-size", type=int, default=300)
    parser.add_argument("--pem-file")
    parser.add_argument("--api-key", default="")
    parser.add_argument("--room", default="Gbench")
    parser.add_argument("--domain-id", default="00000000-0000-0000-0000-000000000000")
    args = parser.parse_args(argv)
    if args.kind == "bare":
        asyncio.run(serve(bare_app(args.body_size)))
    elif args.kind == "floor":
        with open(args.pem_file) as fh:
            pem = fh.read()
        asyncio.run(serve(floor_app(pem, args.api_key, args.room, args.domain_id)))
    else:
        asyncio.run(serve_emulator(args.api_key))


if __name__ == "__main__":
    main(sys.argv[1:])
