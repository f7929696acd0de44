"""`wardwatch user add NAME --role ROLE`: a ward view user entry with an argon2id password hash.

The password is read from WARDWATCH_PASSWORD or stdin (typed without echo on a terminal),
never from the command line. The entry is printed, or appended to --users-file.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from runtime.config import ConfigError
from wardwatch.users import ROLES, UserError, new_user, parse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("user", help="manage ward view users (argon2id password hashes)",
                       description="Make a ward view user entry 'name:role:hash'. The password comes from "
                       "WARDWATCH_PASSWORD or stdin, never the command line.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="make a user entry (print it, or append it to --users-file)")
    add.add_argument("name", help="user name (letters, digits, '.', '_', '@', '-')")
    add.add_argument("--role", choices=ROLES, default="viewer", help="viewer sees the ward; clinician also acknowledges and snoozes")
    add.add_argument("--users-file", default="", help="append the entry to this file (created with mode 600) instead of printing it")
    p.set_defaults(func=run)


def read_password() -> str:
    password = os.environ.get("WARDWATCH_PASSWORD")
    if password:
        return password
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise ConfigError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def run(args: argparse.Namespace) -> int:
    try:
        user = new_user(args.name, args.role, read_password())
        if args.users_file:
            existing = ""
            if os.path.exists(args.users_file):
                with open(args.users_file, encoding="utf-8") as handle:
                    existing = handle.read()
                if args.name in parse(existing, args.users_file):
                    raise UserError(f"--users-file={args.users_file}: the user {args.name!r} exists already")
            fd = os.open(args.users_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(("" if not existing or existing.endswith("\n") else "\n") + user.line() + "\n")
            print(f"user {user.name} ({user.role}) added to {args.users_file}", file=sys.stderr)
        else:
            print(user.line())
    except UserError as exc:
        raise ConfigError(str(exc)) from None
    return 0
