"""Check the import graph against the layout contracts of pyproject.toml, on a copy.

`lint-imports` checks the repository itself (`make lint`; the links
`metainf/coordinator` -> `../coordinator` and its peers let it walk the namespace that
setuptools maps from top-level folders). This script lays the installed shape of
`metainf` out as a tree of hard links in a temporary folder and runs `lint-imports`
there, so that a test can inject a violation without touching the repository. Usage:

    python scripts/lint_imports.py [--inject MODULE_FILE:LINE]

`--inject` appends a line to one module of the tree (never to the repository).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def package_tree(dest: Path) -> Path:
    """Lay out every package of pyproject.toml under dest as it is installed; return dest."""
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text(
        encoding="utf-8"))["tool"]["setuptools"]
    mapping = setup.get("package-dir", {})
    for package in setup["packages"]:
        source = ROOT / mapping.get(package, package.replace(".", "/"))
        target = dest / package.replace(".", "/")
        target.mkdir(parents=True, exist_ok=True)
        for f in source.glob("*.py"):
            try:
                os.link(f, target / f.name)
            except OSError:
                shutil.copy2(f, target / f.name)
    return dest


def main(argv: list[str] | None = None) -> int:
    """Build the tree, optionally inject a line, run lint-imports; return its exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inject", metavar="MODULE_FILE:LINE",
                        help="e.g. metainf/coordinator/store.py:'import metainf.worker.agent'")
    args = parser.parse_args(argv)
    lint = Path(sys.executable).with_name("lint-imports")
    with tempfile.TemporaryDirectory(prefix="metainf-layout-") as tmp:
        tree = package_tree(Path(tmp))
        if args.inject:
            rel, line = args.inject.split(":", 1)
            target = tree / rel
            text = target.read_text(encoding="utf-8")
            target.unlink()  # a hard link: write a new file, never the repository's
            target.write_text(text + "\n" + line + "\n")
        return subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"),
                               "--no-cache"], cwd=tree).returncode


if __name__ == "__main__":
    sys.exit(main())
