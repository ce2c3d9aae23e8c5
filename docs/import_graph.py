"""Print the import graph of bot/ and cogs/, module by module, and any import cycles.

    python docs/import_graph.py [--packages]

Uses grimp (installed with import-linter, which checks the layers: ``lint-imports``). With
``--packages`` each module is folded into its package (``bot.core``, ``bot.store``, ``cogs``…),
which is the picture the layers contract in pyproject.toml describes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def fold(module: str, packages: bool) -> str:
    if not packages:
        return module
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "bot" else parts[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", action="store_true", help="fold modules into packages")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph("bot", "cogs", cache_dir=None)
    edges: set[tuple[str, str]] = set()
    for importer in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(importer):
            a, b = fold(importer, args.packages), fold(imported, args.packages)
            if a != b:
                edges.add((a, b))
    for a, b in sorted(edges):
        print(f"{a} -> {b}")
    cyclic = sorted({a for a, b in edges if (b, a) in edges})
    print(f"\n{len(edges)} imports; two-way pairs: {', '.join(cyclic) if cyclic else 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
