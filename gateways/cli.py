"""The `chatservice` command: serve, migrate, chat, hosts."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from gateways import logs
from gateways.settings import BY_KEY, ENV_VARS, SettingsError, load, read_dotenv
from store.errors import ChatServiceError


def _version() -> str:
    try:
        return version("chatservice")
    except PackageNotFoundError:
        return "unknown"


def _environment_help() -> str:
    width = max(len(v.key) for v in ENV_VARS)
    shown = [v.shown if v.has_value else f"({v.shown})" for v in ENV_VARS]
    lines = [f"  {v.key:<{width}}  {v.help} [default: {s}]" for v, s in zip(ENV_VARS, shown, strict=True)]
    heading = "configuration (environment variables, or a .env file in the working directory):"
    return heading + "\n" + "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatservice",
        description="A chat microservice for LLM conversations: one Ray actor per conversation, "
        "write-through to MySQL or SQLite, HTTP and gRPC gateways.",
        epilog=_environment_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "serve",
        help="run the gateways (and a local Ray unless RAY_ADDRESS is set)",
        description="Migrate the database, start or join Ray, and serve HTTP and gRPC until SIGINT/SIGTERM.",
        epilog=_environment_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chat = commands.add_parser(
        "chat",
        help="chat in the terminal with a running service (gRPC, chatservice.v1)",
        description="An interactive chat over gRPC: answers print as they stream in; Ctrl-C stops "
        "the current answer (the server stops the LLM too); /new starts a new chat, /history shows "
        "this one; /quit, Ctrl-D, or Ctrl-C at an idle prompt leaves. Sends AUTH_TOKEN from the "
        "environment (or ./.env) as the service's token: set it to the service's AUTH_TOKEN.",
    )
    chat.add_argument("--chat-id", help="continue this chat (created with this id if it does not exist)")
    chat.add_argument("--user-id", default=None, help="the user to chat as [default: $USER, or 'cli']")
    chat.add_argument(
        "--target", default=None, help="host:port of the gRPC server [default: 127.0.0.1:$GRPC_SERVER_PORT]"
    )
    hosts = commands.add_parser(
        "hosts",
        help="list the conversation hosts of a hosted deployment (RAY_ADDRESS, RAY_NAMESPACE)",
        description="For CONVERSATION_PLACEMENT=hosted: each host actor's process and live chats, "
        "and with --chat the host that serves that chat.",
    )
    hosts.add_argument("--chat", help="also say which host serves this chat id, and whether it is live")
    commands.add_parser(
        "migrate",
        help="create or upgrade the database schema, then exit",
        description="Apply pending schema migrations to DATABASE_URL (safe to run repeatedly "
        "and from several processes at once).",
    )
    return parser


def chat(args: argparse.Namespace) -> int:
    env = {**read_dotenv(), **os.environ}
    target = args.target or f"127.0.0.1:{env.get('GRPC_SERVER_PORT') or BY_KEY['GRPC_SERVER_PORT'].default}"
    user = args.user_id or env.get("USER") or "cli"
    from gateways.rpc.terminal import main as chat_main

    return chat_main(target, user, args.chat_id, env.get("AUTH_TOKEN") or None, sys.stdout)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "chat":
            return chat(args)
        settings = load()
    except SettingsError as exc:
        print(f"chatservice: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format, settings.log_content)
    for warning in settings.warnings:
        logging.getLogger("chatservice").warning("%s", warning)
    try:
        if args.command == "migrate":
            from store.migrate import migrate

            applied = asyncio.run(migrate(settings.database))
            print(f"migrated {settings.database.redacted()}: applied {applied or 'nothing (up to date)'}")
            return 0
        if args.command == "hosts":
            from gateways.serving.hosts import report

            return report(settings, args.chat, sys.stdout)
        from gateways.serving.startup import serve

        serve(settings)
        return 0
    except SettingsError as exc:
        print(f"chatservice: configuration error: {exc}", file=sys.stderr)
        return 2
    except ChatServiceError as exc:
        print(f"chatservice: {exc.message}", file=sys.stderr)
        if exc.__cause__ is not None:
            logging.getLogger("chatservice").debug("the driver's own error: %r", exc.__cause__)
        return 1


if __name__ == "__main__":
    sys.exit(main())
