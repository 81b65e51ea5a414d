"""The settings' documentation, printed from their declarations (shared/config/settings.py): the README's settings
table and `.env.example`, so that each setting's text is written once. `python -m shared.config.docs` prints both;
`--write` rewrites them; tests/test_settings_docs.py fails when either file differs from what it prints."""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from shared.config.declaration import ALL, BOT, COMPOSE, LAUNCHER, RUNNER, UPDATER, Process, SettingSpec
from shared.config.secret import Secret
from shared.config.settings import declared_settings

ROOT = Path(__file__).resolve().parents[2]
README_START = (
    "<!-- settings table: printed by `python -m shared.config.docs --write` from shared/config/settings.py -->"
)
README_END = "<!-- end of settings table -->"
ENV_WIDTH = 118

ENV_HEADER = """\
# Copy to .env and fill in the empty secrets that apply. Every process reads this file (compose passes
# it to every container); a variable set in the environment wins over it.
# Each setting is shown commented out with its default value: uncomment a line to change it.
# Printed by `python -m shared.config.docs --write` from shared/config/settings.py: change those, not this file.
"""

SECTIONS: tuple[tuple[Process, str], ...] = (
    (COMPOSE, "docker compose"),
    (ALL, "All processes"),
    (LAUNCHER, "make run (llama-discord-bot run)"),
    (BOT | UPDATER, "Bot and updater"),
    (BOT, "Bot"),
    (BOT | RUNNER, "Bot and runner"),
    (RUNNER, "Runner"),
    (RUNNER | LAUNCHER, "Runner and make run"),
    (RUNNER | UPDATER, "Runner and updater"),
    (UPDATER, "Updater"),
)
"""The `.env.example` sections, by who reads the setting, in the order they are printed."""

_LINK = re.compile(r"\[([^\]]+)\]\([^)]+\)")


def env_text(spec: SettingSpec[Any]) -> str:
    """The default as the variable's text: what `NAME=` shows in `.env.example`."""
    if spec.example is not None:
        return spec.example
    value = spec.default
    if isinstance(value, Secret):
        value = None if spec.secret else value.reveal()
    if value is None or isinstance(value, bool):
        return {None: "", True: "true", False: "false"}[value]
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, frozenset):
        return ",".join(sorted(str(item) for item in value))
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def readme_default(spec: SettingSpec[Any]) -> str:
    if spec.default_doc is not None:
        return spec.default_doc
    text = env_text(spec)
    return f"`{text}`" if text else "—"


def readme_table(specs: Iterable[SettingSpec[Any]]) -> str:
    rows = ["| variable | default | used by | meaning |", "|---|---|---|---|"]
    rows += [f"| `{s.env}` | {readme_default(s)} | {s.used_by.as_text()} | {s.doc} |" for s in specs]
    return "\n".join(rows)


def env_example(specs: Sequence[SettingSpec[Any]]) -> str:
    parts = [ENV_HEADER]
    for who, title in SECTIONS:
        members = [spec for spec in specs if spec.used_by == who]
        if not members:
            continue
        parts.append(f"\n# ---- {title} " + "-" * (ENV_WIDTH - len(title) - 8) + "\n")
        for spec in members:
            comment = _LINK.sub(r"\1", spec.doc)
            parts += [f"# {line}\n" for line in textwrap.wrap(comment, ENV_WIDTH - 2, break_on_hyphens=False)]
            shown = "" if spec.secret else "# "
            parts.append(f"{shown}{spec.env}={'' if spec.secret else env_text(spec)}\n")
    return "".join(parts)


def readme_with_table(readme: str, table: str) -> str:
    """The README with its settings table (between the markers) replaced."""
    before, rest = readme.split(README_START, 1)
    _, after = rest.split(README_END, 1)
    return f"{before}{README_START}\n{table}\n{README_END}{after}"


def main(argv: Sequence[str]) -> int:
    specs = declared_settings()
    missing = sorted({p for spec in specs for p in [spec.used_by]} - {who for who, _ in SECTIONS}, key=str)
    if missing:
        print(f"no .env.example section for settings used by {missing}", file=sys.stderr)
        return 1
    table, example = readme_table(specs), env_example(specs)
    if "--write" in argv:
        readme = ROOT / "README.md"
        readme.write_text(readme_with_table(readme.read_text(), table))
        (ROOT / ".env.example").write_text(example)
        return 0
    print(table)
    print()
    print(example, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
