"""Commands whose flags live next to PyTorch (train, evaluate), registered without importing it.

PyTorch is a training dependency (the `train` extra); the services run without it. `train`
and `evaluate` take their flags and defaults from modules that import it, so they are
registered with their arguments left unparsed, and only when one of them runs is its module
imported, its real parser built and the arguments parsed (`--help` included). So
`wardwatch --help` and every service command work, and stay quick, without PyTorch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

# The packages only a training install has.
TRAINING_PACKAGES = ("torch", "onnx", "matplotlib", "tqdm")


def register(
    subparsers: argparse._SubParsersAction,
    name: str,
    *,
    help: str,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
) -> None:
    """Add `wardwatch NAME`; `add_arguments` and `run` may import PyTorch, `register` does not."""
    # '+' as the only prefix character: every argument after the command name, `--help`
    # included, is collected as-is for the real parser below.
    stub = subparsers.add_parser(name, help=help, description=description, add_help=False, prefix_chars="+")
    stub.add_argument("argv", nargs="*")

    def parse_and_run(args: argparse.Namespace) -> int:
        parser = argparse.ArgumentParser(
            prog=f"wardwatch {name}", description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        try:
            add_arguments(parser)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in TRAINING_PACKAGES:
                raise
            print(f"wardwatch {name}: needs the training dependencies ({exc.name} is not installed): "
                  "pip install 'wardwatch[train]'", file=sys.stderr)
            return 2
        return run(parser.parse_args(args.argv))

    stub.set_defaults(func=parse_and_run)
