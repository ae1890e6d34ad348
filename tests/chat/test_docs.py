"""docs/chat.md stays honest: every setting it lists exists with the default it states."""

import re
from pathlib import Path

from django.conf import settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "chat.md"
ROW = re.compile(r"^\|\s*`((?:CHAT|CANCEL)_[A-Z_]+)`\s*\|\s*([0-9.]+)\s*\|")


def test_every_documented_chat_setting_exists_with_its_default():
    rows = [ROW.match(line) for line in DOC.read_text(encoding="utf-8").splitlines()]
    documented = {m.group(1): float(m.group(2)) for m in rows if m}
    assert len(documented) >= 7
    for name, default in documented.items():
        assert float(getattr(settings, name)) == default, name


def test_every_chat_setting_is_documented():
    names = {name for name in dir(settings) if name.startswith("CHAT_")}
    text = DOC.read_text(encoding="utf-8")
    assert all(f"`{name}`" in text for name in names), names
