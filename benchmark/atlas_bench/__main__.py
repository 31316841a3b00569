"""``atlas-bench``: benchmark datasets through the running platform.

    atlas-bench datasets [--data-path DIR] [--download]   every dataset: problems, file, SHA-256, pinned or not

The runner (``atlas-bench run``), its reports and ``compare`` come next (issue 7); the dataset layer and the
hidden-test scorer they use are here and tested.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from atlas_bench import __version__
from atlas_bench.datasets import DATASETS, SOURCES, DatasetError, load


def data_dir(args: argparse.Namespace) -> Path:
    """``--data-path``, else ``ATLAS_DATA_DIR``, else ``./datasets``."""
    return Path(args.data_path or os.environ.get("ATLAS_DATA_DIR") or "datasets").expanduser()


def cmd_datasets(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    failed = 0
    for name in DATASETS:
        try:
            loaded = load(name, data_dir(args), download=args.download, allow_unpinned=True)
        except DatasetError as exc:
            rows.append({"dataset": name, "error": str(exc)})
            failed += 1
            continue
        for path, digest in loaded.files.items():
            rows.append({"dataset": name, "problems": len(loaded.problems), "file": path, "sha256": digest,
                         "pinned": SOURCES[name].sha256 is not None and path not in loaded.unpinned})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            if "error" in r:
                print(f"{r['dataset']:<15} unavailable: {r['error']}")
            else:
                state = "pinned release" if r["pinned"] else ("NOT the pinned release" if SOURCES[r["dataset"]].sha256
                                                              else "not pinned (changes per release)")
                print(f"{r['dataset']:<15} {r['problems']:>4} problems  {r['file']}  sha256 {r['sha256'][:16]}…  "
                      f"{state}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="atlas-bench", description="Run benchmark datasets through ATLAS.")
    parser.add_argument("--version", action="version", version=f"atlas-bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    datasets = sub.add_parser("datasets", help="list every dataset with its problems and file hash")
    datasets.add_argument("--data-path", help="directory of the dataset files (default: ATLAS_DATA_DIR, else "
                          "./datasets)")
    datasets.add_argument("--download", action="store_true", help="fetch missing files from their original source")
    datasets.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return
    sys.exit(cmd_datasets(args))


if __name__ == "__main__":
    main()
