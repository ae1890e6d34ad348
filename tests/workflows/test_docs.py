"""Every setting docs/executions.md documents exists, with the default it states."""

import re
from pathlib import Path

from django.conf import settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "executions.md"


def test_documented_workflow_settings_exist_with_their_defaults():
    section = DOC.read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z][A-Z_]+)` \| `?([^|`]+)`? \|", section, re.M)
    assert len(rows) >= 14
    for name, default in rows:
        assert hasattr(settings, name), name
        value = getattr(settings, name)
        assert str(value) == default.strip() or float(value) == float(default), (name, value)


def test_documented_commands_exist():
    from django.core.management import get_commands

    commands = get_commands()
    for name in re.findall(r"manage\.py (\w+)", DOC.read_text()):
        assert name in commands, name
