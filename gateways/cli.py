"""The `chatservice` command: serve, migrate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from importlib.metadata import PackageNotFoundError, version

from gateways.settings import ENV_VARS, SettingsError, load
from store.errors import ChatServiceError


def _version() -> str:
    try:
        return version("chatservice")
    except PackageNotFoundError:
        return "unknown"


def _environment_help() -> str:
    width = max(len(v.key) for v in ENV_VARS)
    lines = [f"  {v.key:<{width}}  {v.help} [default: {v.default}]" for v in ENV_VARS]
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
        description="Migrate the database, start or join Ray, and serve HTTP until SIGINT/SIGTERM.",
        epilog=_environment_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands.add_parser(
        "migrate",
        help="create or upgrade the database schema, then exit",
        description="Apply pending schema migrations to DATABASE_URL (safe to run repeatedly "
        "and from several processes at once).",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load()
    except SettingsError as exc:
        print(f"chatservice: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "migrate":
            from store.migrate import migrate

            applied = asyncio.run(migrate(settings.database))
            print(f"migrated {settings.database.redacted()}: applied {applied or 'nothing (up to date)'}")
            return 0
        from gateways.server import serve

        serve(settings)
        return 0
    except ChatServiceError as exc:
        print(f"chatservice: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
