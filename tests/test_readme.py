"""The README names only files a fresh clone has."""

import re
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]


def test_the_readme_points_only_at_files_a_clone_has():
    text = (BASE_DIR / "README.md").read_text()
    paths = re.findall(r"`([\w./-]+\.(?:md|py|txt|toml|lock))`", text)

    assert "docs/api.md" in paths
    missing = [path for path in paths if not (BASE_DIR / path).is_file()]
    assert missing == []
    assert "../" not in text
