"""Each setting's text is written once, in its declaration: the README's settings table and `.env.example` are what
`python -m shared.config.docs` prints from them."""

from __future__ import annotations

import subprocess
import sys

from shared.config.docs import README_END, README_START, ROOT, env_example, readme_table, readme_with_table
from shared.config.settings import declared_settings


def test_env_example_is_what_the_declarations_print() -> None:
    assert (ROOT / ".env.example").read_text() == env_example(declared_settings()), (
        ".env.example differs from the declarations: run `python -m shared.config.docs --write`"
    )


def test_the_readmes_settings_table_is_what_the_declarations_print() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.count(README_START) == 1 and readme.count(README_END) == 1
    assert readme_with_table(readme, readme_table(declared_settings())) == readme, (
        "the README's settings table differs from the declarations: run `python -m shared.config.docs --write`"
    )


def test_the_module_prints_both() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "shared.config.docs"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert printed.startswith("| variable | default | used by | meaning |")
    assert env_example(declared_settings()) in printed
    assert all(f"`{spec.env}`" in printed for spec in declared_settings())
