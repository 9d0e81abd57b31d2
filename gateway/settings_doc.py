"""The settings table as people read it: the README's configuration table and `serve --help`.

`python -m gateway.settings_doc` rewrites the table in README.md from SETTINGS;
tests/test_settings.py fails when the README and the table differ.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from gateway.settings import OPENTELEMETRY_VARIABLES, SETTINGS, Setting

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN = "<!-- settings table: generated from SETTINGS in gateway/settings.py by `python -m gateway.settings_doc` -->"
END = "<!-- end of settings table -->"


def default_text(setting: Setting) -> str:
    if setting.default_doc:
        return setting.default_doc
    value = setting.default_value({"env": "development"})
    if value is None or value == () or value == "":
        return "unset"
    if isinstance(value, bool):
        return "`1`" if value else "`0`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def markdown_table() -> str:
    rows = ["| environment | default | accepts | meaning |", "|---|---|---|---|"]
    for setting in SETTINGS:
        accepts = setting.kind.accepts.replace("|", "\\|")
        rows.append(f"| `{setting.env}` | {default_text(setting)} | {accepts} | {setting.help} |")
    return "\n".join(rows)


def environment_help() -> str:
    """For `serve --help`: every variable, what it accepts and its default."""
    lines = ["environment variables (an empty value counts as unset; README.md, Configuration):"]
    for setting in SETTINGS:
        lines.append(f"  {setting.env}")
        text = f"{setting.help}. Accepts {setting.kind.accepts}. Default: {default_text(setting)}."
        lines += textwrap.wrap(text.replace("`", ""), 88, initial_indent="      ", subsequent_indent="      ")
    lines += [f"  {name}" for name in OPENTELEMETRY_VARIABLES]
    lines.append("      read as the OpenTelemetry SDK documents them (tracing; README.md, Observability).")
    return "\n".join(lines)


def readme_with_table(readme: str) -> str:
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{markdown_table()}\n{END}{tail}"


def main() -> None:
    updated = readme_with_table(README.read_text())
    README.write_text(updated)
    print(f"wrote the settings table ({len(SETTINGS)} settings) into {README}", file=sys.stderr)


if __name__ == "__main__":
    main()
