"""What verifying IC certificates costs per notification, next to the same delivery unverified.

    python tests/bench/ic_verify.py            # about 30 s; --rounds N for more

Delivery: one IcNotifier sends group end notifications in sequence to the fake IC over real HTTP
(loopback), the fake signing every certificate through a subnet delegation. "off" is the same
notifier with a checker that accepts everything, so the difference is the verification alone.
Arms alternate in small batches so load on the shared box hits both alike. The in-process rows
time CertificateVerifier.verify alone, on one certificate of the fake and on recorded mainnet data.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import cbor2  # noqa: E402
from certificate_support import CANISTER, MAINNET_CERT, MAINNET_CERT_TIME  # noqa: E402
from fakeic import FakeIC, generate_pem, principal_of_pem  # noqa: E402
from helpers import GROUP  # noqa: E402

from videobridge.models import CanisterKind, Notification, NotificationKind  # noqa: E402
from videobridge.notifier import CertificateVerifier, Delivered, IcNotifier, load_identity  # noqa: E402
from videobridge.principal import principal_to_bytes  # noqa: E402


class AcceptAll:
    """The baseline: every certificate passes unchecked (what the bridge did before)."""

    def verify(self, certificate: bytes, canister_id: bytes) -> None:
        return None


def note(message_id: int) -> Notification:
    return Notification(seq=message_id, message_id=message_id, room_name="bench", kind=NotificationKind.END,
                        canister_kind=CanisterKind.GROUP, canister_id=GROUP, method="end_video_call_v2",
                        args={"message_id": message_id})


async def delivery(fake: FakeIC, pem: str, rounds: int, batch: int) -> dict[str, list[float]]:
    identity = load_identity(pem)
    arms = {"off": IcNotifier(ic_url=fake.url, identity=identity, certificates=AcceptAll()),
            "on": IcNotifier(ic_url=fake.url, identity=identity, root_key=fake.root_key_der)}
    samples: dict[str, list[float]] = {name: [] for name in arms}
    cpu: dict[str, list[float]] = {f"{name} cpu": [] for name in arms}
    message_id = 0
    try:
        for notifier in arms.values():  # warm: connections, delegation cache, imports
            message_id += 1
            assert isinstance(await notifier.send(note(message_id)), Delivered)
        for _ in range(rounds):
            for name, notifier in arms.items():
                for _ in range(batch):
                    message_id += 1
                    wall, proc = time.perf_counter(), time.process_time()
                    outcome = await notifier.send(note(message_id))
                    samples[name].append(time.perf_counter() - wall)
                    cpu[f"{name} cpu"].append(time.process_time() - proc)
                    assert isinstance(outcome, Delivered), outcome
    finally:
        for notifier in arms.values():
            await notifier.close()
    return {**samples, **cpu}


def best_of(fn: Callable[[], None], repeat: int = 7, number: int = 40) -> float:
    """CPU seconds per call, best of `repeat` (CPU time: steadier than wall time on a shared box)."""
    times = []
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(number):
            fn()
        times.append((time.process_time() - start) / number)
    return min(times)


def micro(fake: FakeIC) -> list[tuple[str, float]]:
    group = principal_to_bytes(GROUP)
    delegated = fake._certificate({})
    fake.delegate = False
    root_signed = fake._certificate({})
    fake.delegate = True
    steady = CertificateVerifier(fake.root_key_der)
    steady.verify(delegated, group)
    mainnet = CertificateVerifier(clock=lambda: MAINNET_CERT_TIME)
    tree = cbor2.loads(MAINNET_CERT)["tree"]
    from videobridge.notifier.certificate import tree_digest

    return [
        ("fake, delegated, subnet cached (every notification after the first)",
         best_of(lambda: steady.verify(delegated, group))),
        ("fake, delegated, first from its subnet (2 pairings)",
         best_of(lambda: CertificateVerifier(fake.root_key_der).verify(delegated, group), number=20)),
        ("fake, signed by the root key (no delegation)",
         best_of(lambda: steady.verify(root_signed, group))),
        ("mainnet recording, delegated, first from its subnet", best_of(
            lambda: CertificateVerifier(clock=lambda: MAINNET_CERT_TIME).verify(MAINNET_CERT, CANISTER), number=20)),
        ("  of which hash tree digest (mainnet recording)", best_of(lambda: tree_digest(tree), number=2000)),
        ("  of which verifier set-up (root key parse)", best_of(lambda: CertificateVerifier(), number=200)),
        ("mainnet recording, subnet cached", best_of(lambda: mainnet.verify(MAINNET_CERT, CANISTER))),
    ]


def ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15, help="alternations of the two arms (default 15)")
    parser.add_argument("--batch", type=int, default=10, help="notifications per arm per round (default 10)")
    args = parser.parse_args()
    import importlib.metadata as md

    pem = generate_pem()
    began = time.monotonic()
    with FakeIC(operators={principal_of_pem(pem)}) as fake:
        fake.add_canister(GROUP, CanisterKind.GROUP)
        samples = asyncio.run(delivery(fake, pem, args.rounds, args.batch))
        rows = micro(fake)
    print(f"{platform.python_implementation()} {platform.python_version()}, "
          f"py-arkworks-bls12381 {md.version('py-arkworks-bls12381')}, icp-py-core {md.version('icp-py-core')}; "
          f"{platform.machine()} {platform.system()}; run took {time.monotonic() - began:.0f} s.\n")
    n = len(samples["off"])
    print(f"#### Certificate verification per notification\n\n{n} group end notifications per arm, in sequence, "
          f"arms alternating in batches of {args.batch} (loopback HTTP to the fake IC, which signs through "
          "a subnet delegation). CPU is the whole process, the fake's signing included (equal in both arms).\n")
    print("| delivery | p50 ms | p90 ms | CPU ms per notification (median) | × off (p50) |")
    print("|---|---|---|---|---|")
    off50 = statistics.median(samples["off"])
    for arm, label in (("off", "verification off (baseline)"), ("on", "verification on")):
        wall = sorted(samples[arm])
        p50, p90 = statistics.median(wall), wall[int(0.9 * (len(wall) - 1))]
        print(f"| {label} | {ms(p50)} | {ms(p90)} | {ms(statistics.median(samples[arm + ' cpu']))} "
              f"| {p50 / off50:.2f}× |")
    on50 = statistics.median(samples["on"])
    cpu_diff = statistics.median(samples["on cpu"]) - statistics.median(samples["off cpu"])
    print(f"\nVerification adds {ms(on50 - off50)} ms wall (p50) and {ms(cpu_diff)} ms CPU per notification.\n")
    print("| CertificateVerifier.verify, in-process (CPU, best of 7) | ms | × steady |")
    print("|---|---|---|")
    steady = rows[0][1]
    for label, seconds in rows:
        print(f"| {label} | {ms(seconds)} | {seconds / steady:.2f}× |")


if __name__ == "__main__":
    main()
