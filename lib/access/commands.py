"""Command line: local accounts and the audit trail.

    python -m lib.cli accounts add USER --role lead [--file PATH] [--replace]   # password from the terminal/stdin
    python -m lib.cli accounts remove USER [--file PATH]
    python -m lib.cli accounts list [--file PATH]
    python -m lib.cli audit verify --db PATH
    python -m lib.cli audit export --db PATH --out audit.csv

Passwords are never taken from the command line (they would sit in shell history and the process
list): they are read with getpass from a terminal, or as the first line of stdin when piped.
"""
from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path


def _password(args) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise SystemExit("the two passwords differ; nothing changed")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _path(args):
    from lib.access import accounts

    return args.file or accounts.default_path(getattr(args, "db", None))


def _audit_account(args, detail: str) -> None:
    """An 'account_change' row in the trail of the store beside which the accounts live (subject: the user
    name changed; never a password)."""
    from lib.access import audit
    from lib.records import store

    audit.record_command(store.resolve_path(getattr(args, "db", None)), action="account_change",
                         subject=args.username, detail=f"command line: {detail} ({Path(str(_path(args))).name})")


def cmd_add(args) -> int:
    from lib.access import accounts

    try:
        existed = any(u["username"] == args.username for u in accounts.list_users(_path(args))) \
            if Path(str(_path(args))).exists() else False
        account = accounts.add_user(_path(args), args.username, _password(args), args.role, replace=args.replace)
    except accounts.AccountError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 2
    _audit_account(args, f"{'replaced: password and role set' if existed else 'added'}, role {account.role}")
    print(json.dumps({"ok": True, "username": account.username, "role": account.role, "file": str(_path(args))}))
    return 0


def cmd_remove(args) -> int:
    from lib.access import accounts

    removed = accounts.remove_user(_path(args), args.username)
    if removed:
        _audit_account(args, "removed")
    print(json.dumps({"ok": removed, "username": args.username}))
    return 0 if removed else 1


def cmd_list(args) -> int:
    from lib.access import accounts

    print(json.dumps({"file": str(_path(args)), "users": accounts.list_users(_path(args))}))
    return 0


def cmd_audit(args) -> int:
    from lib.access import audit
    from lib.records import store

    log = audit.AuditLog.for_store(store.resolve_path(args.db))
    if args.action == "verify":
        con = store.connect(store.resolve_path(args.db), read_only=True) \
            if Path(store.resolve_path(args.db)).exists() else None
        try:
            result = audit.verify(log, store=con)  # with the store: every batch and linkage run audited
        finally:
            if con is not None:
                con.close()
        print(json.dumps({"file": str(log.path), **result}))
        return 0 if result["ok"] else 1
    audit.record_command(store.resolve_path(args.db), action="export", subject="audit trail",
                         detail=f"command line: audit export to {Path(args.out).name}")  # before reading and writing
    frame = audit.read(log)
    with open(os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:  # names users
        handle.write(audit.to_csv(frame))
    print(json.dumps({"rows": len(frame), "out": args.out, **{"chain_ok": audit.verify(log)["ok"]}}))
    return 0


def register(sub) -> None:
    acc = sub.add_parser("accounts", help="local accounts (argon2id hashes) for a standalone install")
    acc_sub = acc.add_subparsers(dest="accounts_command", required=True)
    for name, func in (("add", cmd_add), ("remove", cmd_remove), ("list", cmd_list)):
        p = acc_sub.add_parser(name)
        if name != "list":
            p.add_argument("username")
        if name == "add":
            p.add_argument("--role", required=True, choices=["lead", "analyst", "commissioner"])
            p.add_argument("--replace", action="store_true", help="set a new password or role for an existing user")
        p.add_argument("--file", help="accounts file (default $JOINEDUP_ACCOUNTS, else accounts.json beside the store)")
        p.add_argument("--db", help="store path, to find the default accounts file beside it")
        p.set_defaults(func=func)
    aud = sub.add_parser("audit", help="verify or export the audit trail")
    aud.add_argument("action", choices=["verify", "export"])
    aud.add_argument("--db")
    aud.add_argument("--out", default="audit.csv")
    aud.set_defaults(func=cmd_audit)
