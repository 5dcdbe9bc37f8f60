"""`videobridge token mint|decode`: Daily meeting tokens and OpenChat JWTs, for debugging calls."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from videobridge.cli.common import EnvFile, load
from videobridge.cli.errors import USAGE, OperatorError, daily_client, handle_errors, run
from videobridge.cli.output import Json, note, parse_duration, print_json, print_table, when
from videobridge.daily.protocol import TOKEN_CLAIMS as DAILY_CLAIMS

if TYPE_CHECKING:
    from videobridge.config import Settings

app = typer.Typer(name="token", help="Mint Daily meeting tokens; decode and verify Daily or OpenChat tokens.",
                  no_args_is_help=True)

DEFAULT_TTL = 3600  # for rooms without an expiry


def _ttl(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise OperatorError(f"--ttl: {exc}", code=USAGE) from None
    if seconds <= 0:
        raise OperatorError("--ttl must be positive", code=USAGE)
    return seconds


@app.command("mint", epilog="Examples:\n\n"
             "  videobridge token mint GAAAAAAHwqV0BAQ --user-id ops --user-name Ops --owner\n\n"
             "  videobridge token mint debug-room --user-id ops --user-name Ops --ttl 15m --json\n\n"
             "  videobridge token mint GAAAAAAHwqV0BAQ --user-id ops --user-name Ops --audio")
@handle_errors
def mint(
    room: Annotated[str, typer.Argument(help="The Daily room the token is for.", show_default=False)],
    user_id: Annotated[str, typer.Option("--user-id", help="Token user_id (Daily keeps 36 characters).",
                                         show_default=False)],
    user_name: Annotated[str, typer.Option("--user-name", help="Display name in the call.", show_default=False)],
    owner: Annotated[bool, typer.Option("--owner", help="Meeting owner (presenter in a Broadcast room).")] = False,
    ttl: Annotated[str | None, typer.Option("--ttl", help="Lifetime (e.g. 900, 15m, 1h); at most the room's expiry.",
                                            show_default=False)] = None,
    audio: Annotated[bool, typer.Option("--audio", help="An Audio call's token: sends audio only, camera off "
                                        "at the start (as the bridge mints them for Audio calls).")] = False,
    env_file: EnvFile = None,
    json: Json = False,
) -> None:
    """Print a meeting token for ROOM, made the way the bridge makes them (self-signed when possible)."""
    from videobridge.cli.rooms import check_room_name

    check_room_name(room)
    seconds = _ttl(ttl)
    if not user_id.strip() or not user_name.strip():
        raise OperatorError("--user-id and --user-name must not be empty", code=USAGE)
    settings = load(env_file, require=("DAILY_API_KEY",))
    token, self_signed, exp = run(_mint(settings, room, user_id.strip(), user_name.strip(), owner, seconds, audio))
    if json:
        import jwt

        claims = jwt.decode(token, options={"verify_signature": False})
        print_json({"token": token, "room": room, "selfSigned": self_signed, "exp": exp, "claims": claims})
        return
    sys.stdout.write(token + "\n")
    note(f"token for {room}: user {user_id[:36]}{' (owner)' if owner else ''}{', audio only' if audio else ''}, "
         f"expires {when(exp)}")


async def _mint(settings: Settings, room: str, user_id: str, user_name: str, owner: bool,
                ttl: int | None, audio: bool = False) -> tuple[str, bool, int]:
    from videobridge.daily import DailyError, DailyNotFound, TokenGrant, TokenMinter

    now = int(time.time())
    async with daily_client(settings) as daily:
        try:
            found = await daily.get_room(room)
        except DailyNotFound:
            raise OperatorError(f"no Daily room named {room}") from None
        domain_id = settings.daily_domain_id
        if not domain_id:
            try:
                domain_id = (await daily.get_domain()).domain_id or None
            except DailyError:
                domain_id = None  # the minter falls back to POST /meeting-tokens
        exp = found.exp or now + (ttl or DEFAULT_TTL)
        if ttl is not None:
            exp = min(exp, now + ttl)
        if exp <= now:
            raise OperatorError(f"room {room} has expired")
        broadcast = bool(found.config.get("enable_hidden_participants"))
        if audio and broadcast:
            raise OperatorError(f"room {room} is a Broadcast room: Audio tokens are for Default rooms", code=USAGE)
        grant = TokenGrant(room_name=room, user_id=user_id, user_name=user_name, owner=owner,
                           broadcast=broadcast, exp=exp, audio_only=audio)
        assert settings.daily_api_key
        minter = TokenMinter(api_key=settings.daily_api_key, domain_id=domain_id, client=daily)
        return await minter.mint(grant), minter.self_signing, exp


@app.command("decode", epilog="Examples:\n\n  videobridge token decode eyJhbGciOi...\n\n"
             "  pbpaste | videobridge token decode - --json     (keeps the token out of shell history)")
@handle_errors
def decode(
    token: Annotated[str, typer.Argument(help="A Daily meeting token or an OpenChat JWT; '-' reads stdin.",
                                         show_default=False)],
    env_file: EnvFile = None,
    json: Json = False,
) -> None:
    """Show a token's claims; verify the signature when DAILY_API_KEY / OC_PUBLIC is configured.

    Exit status: 0 valid (or not checkable), 1 bad signature or expired, 2 not a JWT.
    """
    text = (sys.stdin.read() if token == "-" else token).strip()
    if text.lower().startswith("bearer "):
        text = text[7:].strip()
    settings = load(env_file)
    report = inspect_token(text, settings)
    if json:
        print_json(report)
    else:
        _show(report)
    problems = []
    if report["signature"] == "invalid":
        why = " (another domain's or a rotated key, or a token from POST /meeting-tokens)" \
            if report["kind"] == "daily" else ""
        problems.append(f"signature does not verify with {report['key']}{why}")
    if report["expired"]:
        problems.append("the token has expired")
    if problems:
        raise OperatorError("; ".join(problems))
    if report["signature"] == "unchecked":
        note(f"videobridge: signature not checked: {report['key']} is not set")


def inspect_token(text: str, settings: Settings) -> dict[str, Any]:
    import jwt

    try:
        header = jwt.get_unverified_header(text)
        claims = jwt.decode(text, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise OperatorError("not a JWT (expected three base64url parts: header.claims.signature)",
                            code=USAGE) from None
    alg = header.get("alg")
    report: dict[str, Any] = {"kind": "unknown", "alg": alg, "header": header, "claims": claims,
                              "signature": "unchecked", "key": None, "room": None, "exp": claims.get("exp"),
                              "expired": isinstance(claims.get("exp"), int) and claims["exp"] < time.time()}
    key: Any = None
    if alg == "HS256" and ("r" in claims or "room_name" in claims or "d" in claims):
        report.update(kind="daily", key="DAILY_API_KEY", room=claims.get("r", claims.get("room_name")),
                      sends=_daily_sends(claims))
        key = settings.daily_api_key
    elif alg == "ES256":
        report.update(kind="openchat", key="OC_PUBLIC", room=_openchat_room(claims), videoCall=_video_call(claims))
        if settings.oc_public:
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            key = load_pem_public_key(settings.oc_public.encode())
    if key is not None:
        try:
            jwt.decode(text, key, algorithms=[str(alg)],
                       options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False})
            report["signature"] = "verified"
        except jwt.InvalidSignatureError:
            report["signature"] = "invalid"
        except jwt.PyJWTError as exc:
            report["signature"] = "invalid"
            report["error"] = str(exc)[:120]
    return report


# Which path takes which claim type (SPEC §9).
_PATHS = (("ACCESS_CLAIMS", "GET /room/meeting_access_token"), ("END_CLAIMS", "POST /room/end_meeting"),
          ("DECLINE_CLAIMS", "POST /room/decline"), ("LEAVE_CLAIMS", "POST /room/leave"))


def _video_call(claims: dict[str, Any]) -> dict[str, Any]:
    """What the bridge makes of an OpenChat JWT's claims (expiry aside: shown on its own)."""
    import videobridge.auth as auth
    from videobridge.errors import AuthError

    exp = claims.get("exp")
    try:
        parsed = auth.parse_claims(claims, now=exp - 1 if isinstance(exp, int) and not isinstance(exp, bool) else None)
    except AuthError as exc:
        return {"valid": False, "problem": str(exc)}
    out: dict[str, Any] = {"valid": True, "claimType": parsed.claim_type.value,
                           "paths": [path for name, path in _PATHS if parsed.claim_type in getattr(auth, name)]}
    if parsed.claim_type is auth.ClaimType.START:
        out["callType"] = parsed.call_type.value  # Audio = Default + audio_only
    if parsed.local_user_index is not None:
        out["localUserIndex"] = parsed.local_user_index
    if parsed.message_id is not None:
        out["messageId"] = str(parsed.message_id)
    return out


def _daily_sends(claims: dict[str, Any]) -> str | None:
    """A Daily token's `p.cs` in words ("audio only" for an Audio call's tokens)."""
    perms = claims.get("p")
    if not isinstance(perms, dict) or "cs" not in perms:
        return None
    value = perms["cs"]
    if value is True:
        return "everything"
    if value is False:
        return "nothing"
    names = {"v": "video", "a": "audio", "sv": "screen video", "sa": "screen audio"}
    parts = [names.get(p.strip(), p.strip()) for p in str(value).split(",") if p.strip()]
    return " and ".join(parts) + (" only" if parts else "")


def _openchat_room(claims: dict[str, Any]) -> str | None:
    from videobridge.chats import InvalidChat, chat_from_claim, room_name

    user = claims.get("user_id")
    try:
        return room_name(chat_from_claim(claims.get("chat_id"), user if isinstance(user, str) else ""))
    except (InvalidChat, ValueError):
        return None


def _meaning_rows(report: dict[str, Any]) -> list[tuple[str, Any]]:
    if report.get("sends"):
        return [("may send", report["sends"])]
    call = report.get("videoCall")
    if not call:
        return []
    if not call["valid"]:
        return [("bridge", f"refuses it: {call['problem']}")]
    rows: list[tuple[str, Any]] = [("claim type", call["claimType"]), ("accepted by", ", ".join(call["paths"]))]
    labels = {"callType": "call type", "messageId": "message id", "localUserIndex": "local user index"}
    rows += [(label, call[key]) for key, label in labels.items() if key in call]
    return rows


def _show(report: dict[str, Any]) -> None:
    kind = {"daily": "Daily meeting token", "openchat": "OpenChat JWT"}.get(report["kind"], "unknown JWT")
    signature = {"verified": f"verified with {report['key']}", "invalid": f"DOES NOT VERIFY with {report['key']}",
                 "unchecked": f"not checked ({report['key']} not set)" if report["key"] else "not checked"}
    exp = report["exp"] if isinstance(report["exp"], int) else None
    print_table(None, ("token", ""), [
        ("kind", f"{kind} ({report['alg']})"),
        ("signature", signature[report["signature"]]),
        ("expires", ("EXPIRED " if report["expired"] else "") + when(exp)),
        ("room", report["room"] or "-"),
        *_meaning_rows(report),
    ])
    names = DAILY_CLAIMS if report["kind"] == "daily" else {}
    rows = []
    for claim, value in report["claims"].items():
        label = f"{claim} ({names[claim]})" if claim in names and names[claim] != claim else claim
        shown = when(value) if claim in ("exp", "iat", "nbf") and isinstance(value, int) else value
        rows.append((label, shown))
    print_table("claims", ("claim", "value"), rows)
