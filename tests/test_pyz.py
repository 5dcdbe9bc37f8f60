"""The single-file deploy: scripts/build-pyz makes a shiv zipapp that runs with a bare python3.11.

The zipapp is built once for the module, then run the way an operator would: `env -i` with only
PATH and HOME, cwd elsewhere, no virtualenv, by an interpreter that has none of our dependencies.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from helpers import start_token
from procs import EmulatorThread, NotifySocket, ServeProcess, accepts, free_port, serve_env

from videobridge.devjwt import DevSigner

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "scripts" / "build-pyz"
MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"

pytestmark = pytest.mark.skipif(importlib.util.find_spec("shiv") is None,
                                reason="shiv is not installed (pip install shiv): cannot build the zipapp")


def bare_python() -> str | None:
    """A python<MINOR> outside any virtualenv that cannot import our dependencies by itself."""
    candidates = [shutil.which(f"python{MINOR}", path="/usr/local/bin:/usr/bin:/bin"),
                  str(Path(sys.base_prefix) / "bin" / f"python{MINOR}")]
    for candidate in candidates:
        if not candidate or not os.access(candidate, os.X_OK):
            continue
        probe = subprocess.run([candidate, "-c", "import aiohttp"], capture_output=True, env=clean_env(Path("/")))
        if probe.returncode != 0:  # good: nothing of ours is installed there
            return candidate
    return None


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), **extra}


@pytest.fixture(name="pyz", scope="module")
def _pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prebuilt = os.environ.get("VIDEOBRIDGE_PYZ")  # .ci/run builds it once and hands it over
    if prebuilt and Path(prebuilt).is_file():
        return Path(prebuilt)
    out = tmp_path_factory.mktemp("dist") / "videobridge.pyz"
    began = time.monotonic()
    result = subprocess.run([sys.executable, str(BUILD), "--output", str(out)], capture_output=True, text=True,
                            timeout=600, cwd=tmp_path_factory.getbasetemp())
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr[-4000:]
    assert out.is_file()
    print(f"\nbuilt {out.name}: {out.stat().st_size / 1024 / 1024:.1f} MiB in {took:.1f}s")
    return out


@pytest.fixture(name="python", scope="module")
def _python() -> str:
    found = bare_python()
    if found is None:
        pytest.skip(f"no python{MINOR} outside the virtualenv (and without aiohttp) to run the zipapp with")
    return found


@pytest.fixture(name="place")
def _place(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(home, cwd): a fresh empty home and an unrelated working directory."""
    home, cwd = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    cwd.mkdir()
    yield home, cwd


def test_help_in_a_clean_environment(pyz: Path, python: str, place: tuple[Path, Path]) -> None:
    home, cwd = place
    result = subprocess.run([python, str(pyz), "--help"], env=clean_env(home), cwd=cwd,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("serve", "sandbox", "rooms", "token", "calls", "config", "webhook"):
        assert command in result.stdout
    assert (home / ".shiv").is_dir()  # unpacked under $HOME/.shiv by default
    # The shebang names the target interpreter, so `./videobridge.pyz` works too.
    assert pyz.read_bytes().startswith(f"#!/usr/bin/env python{MINOR}\n".encode())


def test_sandbox_check_in_a_clean_environment(pyz: Path, python: str, place: tuple[Path, Path]) -> None:
    home, cwd = place
    command = [python, str(pyz), "sandbox", "--check"]
    if accepts(5050):  # the default port is taken on this machine: same command, any free port
        command += ["--port", "0"]
    result = subprocess.run(command, env=clean_env(home), cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sandbox self-check ok" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run as an unprivileged user")
def test_shiv_root_lets_a_homeless_user_run_it(pyz: Path, python: str) -> None:
    """What DynamicUser= gives the service: a uid with no writable home. SHIV_ROOT must point elsewhere."""
    top = Path(tempfile.mkdtemp(prefix="vbpyz-"))
    try:
        top.chmod(0o755)
        shutil.copy2(pyz, top / "videobridge.pyz")
        (top / "videobridge.pyz").chmod(0o644)
        cache = top / "cache"
        cache.mkdir()
        os.chown(cache, 65534, 65534)
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, str(top / "videobridge.pyz"),
                     "--help"]
        homeless = top / "no-home"  # does not exist; its parent is root's, so nobody cannot create it
        without = subprocess.run(as_nobody, env=clean_env(homeless), cwd="/", capture_output=True, text=True,
                                 timeout=120)
        assert without.returncode != 0 and "Permission denied" in without.stderr
        with_root = subprocess.run(as_nobody, env=clean_env(homeless, SHIV_ROOT=str(cache)), cwd="/",
                                   capture_output=True, text=True, timeout=120)
        assert with_root.returncode == 0, with_root.stderr
        assert any(p.name.startswith("videobridge.pyz_") for p in cache.iterdir())
    finally:
        shutil.rmtree(top, ignore_errors=True)


async def test_serve_from_the_zipapp(pyz: Path, python: str, tmp_path: Path, api_key: str,
                                     signer: DevSigner) -> None:
    """The deployed daemon: READY on the notify socket, a start round trip, SIGTERM -> exit 0."""
    with EmulatorThread(api_key) as daily, NotifySocket() as notify:
        port = free_port()
        env = serve_env(tmp_path, daily, signer, NOTIFY_SOCKET=notify.path, PORT=str(port),
                        SHIV_ROOT=str(tmp_path / "shiv"))
        env["PATH"] = "/usr/bin:/bin"
        proc = ServeProcess.start(env, cwd=tmp_path, port=port, name="pyz", command=[python, str(pyz), "serve"])
        try:
            await asyncio.to_thread(notify.wait_for, "READY=1", timeout=60, proc=proc)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{proc.base_url}/room/meeting_access_token",
                                    params={"initiator-username": "alice"},
                                    headers={"x-auth-jwt": start_token(signer)}) as resp:
                    body = await resp.json()
                    assert resp.status == 200 and body["token"], body
            code = await asyncio.to_thread(proc.stop, signal.SIGTERM)
            assert code == 0, proc.output()
            assert "Traceback" not in proc.output()
        finally:
            proc.kill()


async def test_zipapp_verifies_ic_certificates(pyz: Path, python: str, tmp_path: Path, api_key: str,
                                               signer: DevSigner) -> None:
    """py-arkworks-bls12381 (a compiled extension) loads from the zipapp: a badly signed reply is
    retried, then delivered once the fake IC signs under the root key the daemon was given."""
    from fakeic import FakeIC, generate_pem, principal_of_pem
    from helpers import GROUP

    from videobridge.models import CanisterKind

    pem = generate_pem()
    with EmulatorThread(api_key) as daily, NotifySocket() as notify, FakeIC(operators={principal_of_pem(pem)}) as ic:
        ic.add_canister(GROUP, CanisterKind.GROUP)
        ic.sign_wrongly("wrong_root")
        port = free_port()
        env = serve_env(tmp_path, daily, signer, NOTIFY_SOCKET=notify.path, PORT=str(port),
                        SHIV_ROOT=str(tmp_path / "shiv"), IC_URL=ic.url, OC_IDENTITY=pem.replace("\n", "\\n"),
                        VIDEOBRIDGE_IC_ROOT_KEY=ic.root_key_hex, VIDEOBRIDGE_LOG_FORMAT="json")
        env["PATH"] = "/usr/bin:/bin"
        proc = ServeProcess.start(env, cwd=tmp_path, port=port, name="pyz", command=[python, str(pyz), "serve"])

        async def logged(text: str, timeout: float = 30.0) -> None:
            deadline = time.monotonic() + timeout
            while text not in proc.output():
                assert time.monotonic() < deadline, f"no {text!r} in:\n{proc.output()[-3000:]}"
                await asyncio.sleep(0.1)

        try:
            await asyncio.to_thread(notify.wait_for, "READY=1", timeout=60, proc=proc)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{proc.base_url}/room/meeting_access_token",
                                    params={"initiator-username": "alice"},
                                    headers={"x-auth-jwt": start_token(signer)}) as resp:
                    assert resp.status == 200, await resp.text()
            await logged("certificate verification failed: delegation signature does not verify")
            assert ic.calls and '"notification_settled"' not in proc.output()
            ic.sign_correctly()
            await logged('"notification_settled"')
            code = await asyncio.to_thread(proc.stop, signal.SIGTERM)
            assert code == 0, proc.output()
            assert "Traceback" not in proc.output()
        finally:
            proc.kill()
