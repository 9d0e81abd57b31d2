"""The README's layout section matches the tree: every package is in it, and every file or
package it names exists where it says. Its table of live event kinds is the gateway's: the kinds
of resolvers/events.py, each under the GraphQL type that carries it."""

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


def event_kinds() -> list[list[str]]:
    """The rows of the README's table of live event kinds: kind, organization type, viewer type."""
    text = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- event-kinds -->\n(.*?)<!-- /event-kinds -->", text, re.S)
    assert found, "the README's Live events section has no event-kinds table"
    rows = [line.strip().strip("|").split("|") for line in found.group(1).strip().splitlines()[2:]]
    return [[cell.strip().strip("`") for cell in row[:3]] for row in rows]


def test_the_readmes_event_kinds_are_the_gateways_with_their_types():
    from resolvers.events import ORGANIZATION_KINDS, VIEWER_KINDS
    from schema.events import ORGANIZATION_EVENT_TYPES, VIEWER_EVENT_TYPES

    def name(cls: type) -> str:
        return cls.__strawberry_definition__.name

    rows = event_kinds()
    assert len({kind for kind, _, _ in rows}) == len(rows), "a kind is listed twice"
    assert {kind: org for kind, org, _ in rows if org != "—"} == \
        {kind: name(ORGANIZATION_EVENT_TYPES[kind]) for kind in ORGANIZATION_KINDS}
    assert {kind: viewer for kind, _, viewer in rows if viewer != "—"} == \
        {kind: name(VIEWER_EVENT_TYPES[kind]) for kind in VIEWER_KINDS}
    assert {kind for kind, _, _ in rows} == set(ORGANIZATION_KINDS) | set(VIEWER_KINDS)
