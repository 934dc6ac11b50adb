"""The ``matserve`` command."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="matserve", description="materials inference service and its client")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="start tritonserver and the gateway (settings from MATSERVE_* variables)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from matserve.serve import serve

        return serve()
    return 2


if __name__ == "__main__":
    sys.exit(main())
