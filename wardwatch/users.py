"""Ward view users: names, roles and argon2id password hashes (argon2-cffi), from a file or env.

One user per line, `name:role:hash` (`#` comments), in `--users-file` or the `WARDWATCH_USERS`
variable (lines separated by newlines). Roles: `viewer` sees the ward; `clinician` also
acknowledges and snoozes alerts. `wardwatch user add NAME --role ROLE` prints such a line,
reading the password from stdin or `WARDWATCH_PASSWORD`, never the command line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ROLES: Final = ("viewer", "clinician")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD_LENGTH: Final = 10

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
_DUMMY_HASH: Final = _hasher.hash("a password nobody has")  # so an unknown name costs the same time


class UserError(ValueError):
    """A user entry or source that does not parse: one line naming where and what."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str

    @property
    def may_acknowledge(self) -> bool:
        return self.role == "clinician"

    def line(self) -> str:
        return f"{self.name}:{self.role}:{self.password_hash}"


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password: expected at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def new_user(name: str, role: str, password: str) -> User:
    check_name(name, "name")
    if role not in ROLES:
        raise UserError(f"role={role!r}: expected one of {', '.join(ROLES)}")
    return User(name, role, hash_password(password))


def check_name(name: str, where: str) -> None:
    if not NAME.match(name):
        raise UserError(f"{where}={name[:70]!r}: expected letters, digits, '.', '_', '@' or '-' (at most 64)")


def parse(text: str, where: str) -> dict[str, User]:
    users: dict[str, User] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, role, password_hash = (line.split(":", 2) + ["", ""])[:3]
        check_name(name, f"{where} line {number}: name")
        if role not in ROLES:
            raise UserError(f"{where} line {number} ({name}): role {role!r}, expected one of {', '.join(ROLES)}")
        if not password_hash.startswith("$argon2"):
            raise UserError(f"{where} line {number} ({name}): expected an argon2 hash (make one with `wardwatch user add`)")
        if name in users:
            raise UserError(f"{where} line {number}: the user {name!r} appears twice")
        users[name] = User(name, role, password_hash)
    return users


class Users:
    """The users the ward view knows; `authenticate` checks a password in roughly constant time."""

    def __init__(self, users: dict[str, User]) -> None:
        self.users = users

    @classmethod
    def load(cls, file: str = "", env: str = "") -> Users:
        users: dict[str, User] = {}
        if file:
            with open(file, encoding="utf-8") as handle:
                users |= parse(handle.read(), file)
        if env:
            users |= parse(env, "WARDWATCH_USERS")
        return cls(users)

    def authenticate(self, name: str, password: str) -> User | None:
        user = self.users.get(name)
        try:
            _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return user
