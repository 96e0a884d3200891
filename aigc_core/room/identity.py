"""Who is acting: the single local user, a workshop participant, or the teacher.

Single-user mode is the default (``streamlit run app.py`` on a laptop): there
is one actor, :data:`LOCAL`, who sees and controls everything, and nobody is
asked for a name. Workshop mode is switched on by the teacher with
``AIGC_WORKSHOP_CODE`` (the room code participants type) and optionally
``AIGC_TEACHER_CODE`` (the code that makes a browser the teacher's).

A participant joins with the room code and a display name and gets a signed
token: ``base64url(JSON claims) "." base64url(HMAC-SHA256(key, claims))``. The
key is a random secret kept in the workspace (``$AIGC_HOME/room/secret``,
readable by the server's user only) mixed with the current codes, so a token
cannot be forged from a name, survives a refresh and a second tab, and stops
working when the teacher changes the codes. No accounts, no e-mail; nothing
leaves the machine.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass

from ..errors import UserError
from ..paths import aigc_home

ROLES = ("local", "participant", "teacher")
#: names the studio uses for itself (run owners, the single user): nobody may join as one
RESERVED_NAMES = {"local", "teacher", "worker", "starter", "foreground", "room", "admin", "everyone"}
NAME_RE = re.compile(r"^[^\W_][\w .'-]{0,31}$")
MAX_NAME = 32
#: a token older than this is refused (a workshop is a day, not a season)
TOKEN_MAX_AGE_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Actor:
    """The person an engine call acts for."""

    name: str
    role: str = "participant"

    @property
    def is_teacher(self) -> bool:
        return self.role == "teacher"

    @property
    def sees_everything(self) -> bool:
        """The single local user and the teacher see and control every run and data set."""
        return self.role in ("local", "teacher")

    def owns(self, owner: str | None) -> bool:
        return self.sees_everything or (owner is not None and owner == self.name)


LOCAL = Actor("local", "local")


def workshop_code() -> str:
    return os.environ.get("AIGC_WORKSHOP_CODE", "").strip()


def teacher_code() -> str:
    return os.environ.get("AIGC_TEACHER_CODE", "").strip()


def workshop_mode() -> bool:
    """Workshop mode is on when the teacher set a room code."""
    return bool(workshop_code())


def clean_name(name: str) -> str:
    """A display name as it will be shown and stored, or a UserError saying what is wrong."""
    name = " ".join(str(name or "").split())
    if not name:
        raise UserError("type a display name (the name others in the room will see)")
    if len(name) > MAX_NAME:
        raise UserError(f"a display name has at most {MAX_NAME} characters; {name[:40]!r} has {len(name)}")
    if not NAME_RE.match(name):
        raise UserError(f"{name!r} is not a usable display name: use letters, digits, spaces, '.', '-' or "
                        "apostrophes, starting with a letter or digit")
    if name.lower() in RESERVED_NAMES:
        raise UserError(f"{name!r} is a name the studio uses itself; choose another")
    return name


# ---- tokens -------------------------------------------------------------------------

def _secret() -> bytes:
    """The workspace's signing secret, made once (only the server's user can read it)."""
    folder = aigc_home() / "room"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "secret"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
        # a damaged secret (empty, cut short): replace it; every token issued with it stops working
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        data = secrets.token_bytes(32)
        fh.write(data)
    return data


def _key() -> bytes:
    # the codes are part of the key: a new room code (or teacher code) retires old tokens
    return hashlib.sha256(_secret() + b"\0" + workshop_code().encode() + b"\0" + teacher_code().encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_token(actor: Actor, now: float | None = None) -> str:
    claims = json.dumps({"n": actor.name, "r": actor.role, "t": int(now if now is not None else time.time())},
                        separators=(",", ":")).encode()
    mac = hmac.new(_key(), claims, hashlib.sha256).digest()
    return f"{_b64(claims)}.{_b64(mac)}"


def actor_from_token(token: str | None, now: float | None = None) -> Actor | None:
    """The actor a token names, or ``None`` when it is missing, forged, expired or from older codes."""
    if not token or not workshop_mode() or token.count(".") != 1:
        return None
    body, mac = token.split(".")
    try:
        claims = _unb64(body)
        given = _unb64(mac)
    except (ValueError, TypeError):
        return None
    if not hmac.compare_digest(hmac.new(_key(), claims, hashlib.sha256).digest(), given):
        return None
    try:
        data = json.loads(claims)
        name, role, issued = str(data["n"]), str(data["r"]), float(data["t"])
    except (ValueError, KeyError, TypeError):
        return None
    if role not in ("participant", "teacher"):
        return None
    if (now if now is not None else time.time()) - issued > TOKEN_MAX_AGE_S:
        return None
    return Actor(name, role)


def join(code: str, name: str) -> tuple[Actor, str]:
    """Join the room: the room code makes a participant, the teacher code the teacher.

    Returns the actor and the token that stands for them from now on."""
    if not workshop_mode():
        raise UserError("this studio is not in workshop mode; there is nothing to join")
    code = (code or "").strip()
    if teacher_code() and hmac.compare_digest(code.encode(), teacher_code().encode()):
        actor = Actor(clean_name(name) if name and name.strip() else "Teacher", "teacher")
    elif hmac.compare_digest(code.encode(), workshop_code().encode()):
        actor = Actor(clean_name(name), "participant")
    else:
        raise UserError("that is not this room's code; ask the teacher for it")
    return actor, issue_token(actor)


def actor_for_command_line(user: str | None = None, teacher: bool = False) -> Actor:
    """Who a command-line call acts for: ``--user NAME`` (or ``AIGC_USER``), or ``--teacher``.

    Without workshop mode every command acts as the single local user and the
    flags are not needed. The command line runs on the server itself, so the
    teacher flag needs the teacher code to be set there."""
    if not workshop_mode():
        return LOCAL
    if teacher:
        if not teacher_code():
            raise UserError("--teacher needs AIGC_TEACHER_CODE to be set for this studio")
        return Actor("Teacher", "teacher")
    user = user if user is not None else os.environ.get("AIGC_USER", "")
    if not user or not user.strip():
        raise UserError("workshop mode is on: say who you are with --user NAME (or AIGC_USER), "
                        "or act as the teacher with --teacher")
    return Actor(clean_name(user), "participant")
