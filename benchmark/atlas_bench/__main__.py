"""``atlas-bench``: the dataset runner lands with the benchmark issue; until then the command only
identifies itself, so packaging and the console script are already proven."""

from __future__ import annotations

import argparse

from atlas_bench import __version__


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="atlas-bench", description="Run benchmark datasets through ATLAS.")
    parser.add_argument("--version", action="version", version=f"atlas-bench {__version__}")
    parser.parse_args(argv)
    parser.print_help()


if __name__ == "__main__":
    main()
