"""`videobridge rooms list|create|delete|prune`: the Daily rooms of the domain."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from videobridge.cli.common import EnvFile, State, load
from videobridge.cli.errors import USAGE, OperatorError, confirm, daily_client, handle_errors, run
from videobridge.cli.output import Json, note, parse_iso, print_json, print_table, relative, when
from videobridge.daily.protocol import ROOM_NAME

if TYPE_CHECKING:
    from videobridge.chats import Chat
    from videobridge.config import Settings
    from videobridge.daily import Room
    from videobridge.models import Call

app = typer.Typer(name="rooms", help="List, create, delete and prune the domain's Daily rooms.",
                  no_args_is_help=True)

CHAT_HELP = "group:<group id> | direct:<user a>,<user b> | channel:<community id>,<channel id>"


@dataclass(frozen=True, slots=True)
class RoomRow:
    room: Room
    participants: int
    call: Call | None

    @property
    def chat_kind(self) -> str:
        from videobridge.chats import InvalidChat, chat_from_room

        try:
            return chat_from_room(self.room.name).kind.value
        except InvalidChat:
            return "-"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.room.name, "id": self.room.id, "url": self.room.url, "privacy": self.room.privacy,
                "createdAt": self.room.created_at, "exp": self.room.exp, "chatKind": self.chat_kind,
                "participants": self.participants, "tracked": self.call is not None,
                "callState": self.call.state.value if self.call else None,
                "messageId": str(self.call.message_id) if self.call else None}


def parse_chat_spec(spec: str) -> Chat:
    """`group:<id>`, `direct:<a>,<b>` or `channel:<community>,<channel id>` -> a chat."""
    from videobridge.chats import ChannelChat, DirectChat, GroupChat, InvalidChat, parse_channel_id
    from videobridge.principal import is_principal

    kind, sep, rest = spec.strip().partition(":")
    parts = [p.strip() for p in rest.split(",")] if sep else []
    kind = kind.lower()

    def principal(text: str, what: str) -> str:
        if not is_principal(text):
            raise InvalidChat(f"{what} {text[:64]!r} is not a principal")
        return text

    if kind == "group" and len(parts) == 1:
        return GroupChat(principal(parts[0], "group id"))
    if kind == "direct" and len(parts) == 2:
        a, b = principal(parts[0], "user"), principal(parts[1], "user")
        if a == b:
            raise InvalidChat("a direct chat needs two different users")
        return DirectChat.between(a, b)
    if kind == "channel" and len(parts) == 2:
        return ChannelChat(principal(parts[0], "community id"), parse_channel_id(parts[1]))
    raise InvalidChat(f"{spec[:80]!r} is not a chat spec ({CHAT_HELP})")


def check_room_name(name: str) -> str:
    if not ROOM_NAME.match(name):
        raise OperatorError(f"{name[:80]!r} is not a Daily room name (1-128 of A-Z a-z 0-9 _ -)", code=USAGE)
    return name


async def inventory(settings: Settings) -> list[RoomRow]:
    """Every live room with its presence count and the call the bridge tracks in it."""
    from videobridge.state import read_calls

    async with daily_client(settings) as daily:
        rooms = [room async for room in daily.list_rooms()]
        presence = await daily.presence()
    calls, _ = read_calls(store_url=settings.store_url, state_path=settings.state_path)
    return [RoomRow(r, len(presence.get(r.name, ())), calls.get(r.name)) for r in rooms]


@app.command("list", epilog="Examples:  videobridge rooms list  |  videobridge rooms list --json | jq '.[].name'")
@handle_errors
def list_rooms(env_file: EnvFile = None, state: State = None, json: Json = False) -> None:
    """All Daily rooms (every page), live participant counts, tracked calls and expiry."""
    settings = load(env_file, require=("DAILY_API_KEY",), state=state)
    rows = run(inventory(settings))
    if json:
        print_json([row.to_json() for row in rows])
        return
    now = time.time()
    print_table(f"Daily rooms ({len(rows)})", ("room", "chat", "present", "tracked call", "expires", "created"),
                [(r.room.name, r.chat_kind, r.participants, r.call.state.value if r.call else "no",
                  when(r.room.exp, now=now), relative(parse_iso(r.room.created_at), now=now)) for r in rows])


@app.command("create", epilog="Examples:\n\n  videobridge rooms create debug-room\n\n"
             "  videobridge rooms create --chat group:ll4qc-niaaa-aaaap-qvfoq-cai --broadcast\n\n"
             "  videobridge rooms create --chat channel:3v2qj-5qaaa-aaaar-q2qoa-cai,2846315027 --diamond")
@handle_errors
def create(
    name: Annotated[str | None, typer.Argument(help="Room name (or derive it from --chat).",
                                               show_default=False)] = None,
    chat: Annotated[str | None, typer.Option("--chat", help=f"Name the room after an OpenChat chat: {CHAT_HELP}.",
                                             show_default=False)] = None,
    broadcast: Annotated[bool, typer.Option("--broadcast",
                                            help="Broadcast room (200 people, hidden audience).")] = False,
    diamond: Annotated[bool, typer.Option("--diamond", help="Diamond lifetime: 2 hours instead of 1.")] = False,
    env_file: EnvFile = None,
    json: Json = False,
) -> None:
    """Create a private Daily room with the same properties the bridge gives a call's room."""
    from videobridge.chats import room_name

    if chat is not None:
        derived = room_name(parse_chat_spec(chat))
        if name is not None and name != derived:
            raise OperatorError(f"--chat {chat} is room {derived}, not {name}; give one or the other", code=USAGE)
        name = derived
    if name is None:
        raise OperatorError("give a room NAME or --chat SPEC", code=USAGE)
    check_room_name(name)
    settings = load(env_file, require=("DAILY_API_KEY",))
    room = run(_create(settings, name, broadcast=broadcast, diamond=diamond))
    if json:
        print_json({"name": room.name, "id": room.id, "url": room.url, "privacy": room.privacy,
                    "createdAt": room.created_at, "exp": room.exp, "config": room.config})
        return
    print_table("room created", ("room", "url", "type", "expires"),
                [(room.name, room.url, "Broadcast" if broadcast else "Default", when(room.exp))])
    note(f"Mint a token: videobridge token mint {room.name} --user-id <id> --user-name <name> --owner")


async def _create(settings: Settings, name: str, *, broadcast: bool, diamond: bool) -> Room:
    from videobridge.daily import DailyRoomExists
    from videobridge.models import CallType
    from videobridge.roomconfig import room_lifetime, room_properties

    now = int(time.time())
    properties = room_properties(CallType.BROADCAST if broadcast else CallType.DEFAULT,
                                 nbf=now, exp=now + room_lifetime(diamond))
    async with daily_client(settings) as daily:
        try:
            return await daily.create_room(name, properties=properties)
        except DailyRoomExists:
            raise OperatorError(f"a Daily room named {name} already exists") from None


@app.command("delete", epilog="Example:  videobridge rooms delete debug-room --yes")
@handle_errors
def delete(
    name: Annotated[str, typer.Argument(help="The Daily room to delete.", show_default=False)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Delete even if the bridge tracks a call there.")] = False,
    env_file: EnvFile = None,
    state: State = None,
    json: Json = False,
) -> None:
    """Delete one Daily room (everyone in it is disconnected)."""
    from videobridge.state import read_calls

    check_room_name(name)
    settings = load(env_file, require=("DAILY_API_KEY",), state=state)
    calls, _ = read_calls(store_url=settings.store_url, state_path=settings.state_path)
    if name in calls and not force:
        raise OperatorError(f"the bridge tracks a call in {name}: end it with `videobridge calls end {name}` "
                            "(which also tells OpenChat), or pass --force")
    confirm(f"Delete Daily room {name}?", yes=yes)
    if not run(_delete(settings, name)):
        raise OperatorError(f"no Daily room named {name}")
    if json:
        print_json({"deleted": True, "name": name})
    else:
        note(f"deleted Daily room {name}")


async def _delete(settings: Settings, name: str) -> bool:
    async with daily_client(settings) as daily:
        return await daily.delete_room(name)


@app.command("prune", epilog="Examples:  videobridge rooms prune --dry-run  |  "
             "videobridge rooms prune --yes --min-age 10m")
@handle_errors
def prune(
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Only show what would be deleted.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    min_age: Annotated[str, typer.Option("--min-age", help="Keep rooms younger than this (e.g. 90s, 10m).")] = "60s",
    env_file: EnvFile = None,
    state: State = None,
    json: Json = False,
) -> None:
    """Delete Daily rooms with no tracked call and nobody present (at Daily's 2 deletes/s)."""
    from videobridge.cli.output import parse_duration

    try:
        keep_younger = parse_duration(min_age)
    except ValueError as exc:
        raise OperatorError(f"--min-age: {exc}", code=USAGE) from None
    settings = load(env_file, require=("DAILY_API_KEY",), state=state)
    rows = run(inventory(settings))
    now = time.time()
    verdicts = [(row, _keep_reason(row, now, keep_younger)) for row in rows]
    doomed = [row.room.name for row, reason in verdicts if reason is None]
    report: dict[str, Any] = {"dryRun": dry_run, "candidates": doomed,
                              "kept": [{"name": r.room.name, "reason": why} for r, why in verdicts if why],
                              "deleted": [], "skipped": [], "failed": []}
    if dry_run or not doomed:
        if json:
            print_json(report)
        else:
            print_table(f"rooms prune{' --dry-run' if dry_run else ''}: {len(doomed)} of {len(rows)} to delete",
                        ("room", "present", "tracked call", "verdict"),
                        [(r.room.name, r.participants, r.call.state.value if r.call else "no",
                          "delete" if why is None else f"keep: {why}") for r, why in verdicts])
        return
    confirm(f"Delete {len(doomed)} Daily room(s) with no tracked call and nobody present?", yes=yes)
    outcome = run(_prune(settings, doomed, progress=not json))
    if json:
        print_json({**report, **outcome})
    else:
        note(f"deleted {len(outcome['deleted'])}, skipped {len(outcome['skipped'])}, "
             f"failed {len(outcome['failed'])}")
        for item in outcome["skipped"]:
            note(f"  kept {item['name']}: {item['reason']}")
        for item in outcome["failed"]:
            note(f"  failed {item['name']}: {item['error']}")
    if outcome["failed"]:
        raise OperatorError("")  # each failure is reported above (or in the JSON)


def _keep_reason(row: RoomRow, now: float, keep_younger: int) -> str | None:
    if row.call is not None:
        return f"tracked call ({row.call.state.value})"
    if row.participants:
        return f"{row.participants} present"
    created = parse_iso(row.room.created_at)
    if created is not None and now - created < keep_younger:
        return "younger than --min-age"
    return None


async def _prune(settings: Settings, names: list[str], *, progress: bool) -> dict[str, list[Any]]:
    """Delete one by one, re-checking each room just before: a call may have started there since."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from videobridge.cli.output import console
    from videobridge.daily import DailyError, DailyNotFound
    from videobridge.state import read_calls

    done: dict[str, list[Any]] = {"deleted": [], "skipped": [], "failed": []}
    columns = (TextColumn("pruning"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    async with daily_client(settings) as daily:
        with Progress(*columns, console=console(stderr=True), disable=not progress) as bar:
            task = bar.add_task("prune", total=len(names))
            for name in names:
                try:
                    calls, _ = read_calls(store_url=settings.store_url, state_path=settings.state_path)
                    if name in calls:
                        done["skipped"].append({"name": name, "reason": "a call started there"})
                    elif present := len(await daily.room_presence(name)):
                        done["skipped"].append({"name": name, "reason": f"{present} present now"})
                    elif await daily.delete_room(name):  # the client keeps to 2 deletes/s
                        done["deleted"].append(name)
                    else:
                        done["skipped"].append({"name": name, "reason": "already gone"})
                except DailyNotFound:
                    done["skipped"].append({"name": name, "reason": "already gone"})
                except DailyError as exc:
                    done["failed"].append({"name": name, "error": str(exc)})
                bar.advance(task)
    return done
