"""The `alphabet` command: serve, migrate, history, replay, operator, export, import, worker:
its arguments here, what each command does in alphabet.commands.

It starts fast and fails plainly. Each command imports what it needs (Sanic, eventsourcing,
tqdm, the wiring) when it runs, so `alphabet --help` or a mistyped argument costs little more
than Python's own start; a bad argument, a bad setting or a port that cannot be listened on is
one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from alphabet import commands
from alphabet.commands import USAGE_ERROR


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (it prints the whole usage first), pointing to
    --help instead, and every default shown in help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Version(argparse.Action):
    """--version, read from the installed package's metadata only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            shown = version("alphabet-events")
        except PackageNotFoundError:
            shown = "(version unknown: not installed)"
        print(f"{parser.prog} {shown}")
        parser.exit()


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (1 to 65535)")
    return value


def at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parser() -> Parser:
    top = Parser(prog="alphabet", description="Alphabet Events backend")
    top.add_argument("--version", action=Version)
    named = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = named.add_parser("serve", help="serve the HTTP API (and run the views' follower)",
                              description="Serve the HTTP API, with the views' follower and "
                              "the mailer beside the workers; migrates first.")
    run.add_argument("--host", default="127.0.0.1", help="address to listen on")
    run.add_argument("--port", type=port, default=8000, help="port to listen on")
    run.add_argument("--workers", type=at_least_one, default=1,
                     help="worker processes serving requests")
    run.add_argument("--access-log", action="store_true", help="log every request")
    run.set_defaults(func=commands.serve)
    schema = named.add_parser("migrate", help="create the tables where missing (idempotent)")
    schema.set_defaults(func=commands.migrate)
    trail = named.add_parser("history", help="print an event's audit trail")
    trail.add_argument("event_id", help="the event's id")
    trail.set_defaults(func=commands.history)
    again = named.add_parser("replay", help="rebuild read models from the event store")
    again.add_argument("view", nargs="?", help="one view (events, mail or reminders; "
                       "default: all)")
    again.set_defaults(func=commands.replay)
    out = named.add_parser("export", help="write the store to a file (JSON Lines with a "
                              "checksum)", description="Write the event store's facts in log "
                              "order, and the accounts, invitees and mail deliveries they cannot "
                              "give back, to a new file. The file holds personal data.")
    out.add_argument("file", help="the file to write (must not exist)")
    out.set_defaults(func=commands.export)
    into = named.add_parser("import", help="load an export into an empty store and rebuild "
                               "the views", description="Check an export whole (its SHA-256), "
                               "load it into an empty store, then rebuild every view.")
    into.add_argument("file", help="a file `alphabet export` wrote")
    into.set_defaults(func=commands.import_)
    grants = named.add_parser(
        "operator", help="grant or revoke an account's operator role, or list operators",
        description="Operators may delete any event and any account and replay the views "
        "from the console. Grants are facts on the account; ALPHABET_OPERATORS names more.")
    actions = grants.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (("grant", "make the account an operator"),
                         ("revoke", "end the account's operator grant")):
        chosen = actions.add_parser(action, help=text)
        chosen.add_argument("username", help="the account's username")
    actions.add_parser("list", help="every operator: granted, and named by the setting")
    grants.set_defaults(func=commands.operator)
    kafka = named.add_parser("worker", help="run the Kafka relay and the faust agents")
    kafka.set_defaults(func=commands.worker)
    return top


def main(argv: list[str] | None = None) -> int:
    command = parser()
    args = command.parse_args(argv)
    from alphabet.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:  # a variable, not an argument: --help would not help
        command.exit(USAGE_ERROR, f"{command.prog}: error: {exc}\n")
    try:
        result: int = args.func(settings, args)
        sys.stdout.flush()
    except BrokenPipeError:
        # Whoever read our output has stopped reading (`alphabet history ID | head -1`): no
        # fault of ours, and nothing to report. Python would raise it again when it flushes
        # stdout at exit, so stdout goes to /dev/null first (the signal module's recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
