"""The wheel a user deploys holds every package and the bundled corpora.

An editable checkout hides a missing subpackage (the source tree is on the path); only the built
wheel shows what ``pip install .`` really installs.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from bot.corpora import CORPORA

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_holds_every_package_and_corpus(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), ROOT],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {p.parent.relative_to(ROOT) for p in ROOT.glob("[bc]o*/**/__init__.py")}
    assert {"bot", "bot/core", "bot/store", "bot/services", "cogs"} <= {
        p.as_posix() for p in packages
    }
    for package in packages:
        assert f"{package.as_posix()}/__init__.py" in names
    for corpus in CORPORA.values():
        assert f"bot/corpora/texts/{corpus.file}" in names
    assert "bot/corpora/texts/README.md" in names
    assert "bot/py.typed" in names
