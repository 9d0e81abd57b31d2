"""The README's layout section matches the tree: every package is in it, and every file or
package it names exists where it says."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def layout() -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"## Layout\n\n```\n(.*?)```", text, re.S)
    assert found, "the README has no layout block"
    return found.group(1)


def entries() -> dict[str, str]:
    """Each top-level directory of the block, with the text that describes it."""
    out: dict[str, str] = {}
    current = None
    for line in layout().splitlines():
        if not line.startswith(" "):
            current, _, rest = line.partition(" ")
            out[current.rstrip("/")] = rest
        elif current is not None:
            out[current.rstrip("/")] += " " + line.strip()
    return out


def test_every_package_and_directory_is_in_the_layout():
    described = set(entries())
    on_disk = {p.name for p in ROOT.iterdir()
               if p.is_dir() and not p.name.startswith(".") and not p.name.endswith(".egg-info")
               and (p / "__init__.py").exists() or p.name in ("operations", "tests")}
    assert on_disk - described == set(), "add these to the README's layout section"
    assert described - {p.name for p in ROOT.iterdir() if p.is_dir()} == set(), "the layout names these; they are gone"


def test_every_module_the_layout_names_exists_in_its_package():
    missing = []
    for directory, text in entries().items():
        for name in re.findall(r"([a-z_/]+\.py)\b", text):
            candidates = [ROOT / directory / name, *(ROOT / directory).rglob(Path(name).name)]
            if not any(c.exists() for c in candidates):
                missing.append(f"{directory}/{name}")
    assert missing == [], "the README's layout names modules that do not exist"
