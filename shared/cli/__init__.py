"""The command line: `python -m shared.cli` (see DESIGN.md, command-line contract).

`commands` builds the parser and runs a command; `ops`, `audit`, `report` and `replay` are command modules;
`usage` holds the usage error and exit statuses they all share; `json_output` prints `--json` output."""

from shared.cli.commands import main

__all__ = ["main"]
