"""Every variable in docs/operations.md's configuration table is read by canvas/settings.py
(or, for the one read before the settings, by canvas/daphne_server.py)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def documented_variables() -> list[str]:
    text = (ROOT / "docs" / "operations.md").read_text()
    table = text.split("## Configuration", 1)[1].split("\n### ", 1)[0]
    names = []
    for line in table.splitlines():
        if line.startswith("| `"):
            names += re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])
    return names


def test_the_configuration_table_lists_variables():
    assert len(documented_variables()) >= 25


def test_every_documented_variable_is_read_by_the_settings():
    source = "".join(
        (ROOT / "canvas" / name).read_text() for name in ("settings.py", "daphne_server.py")
    )
    missing = [name for name in documented_variables() if f'"{name}"' not in source]
    assert missing == []
