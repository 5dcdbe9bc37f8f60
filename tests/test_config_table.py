"""The settings table (videobridge.config.VARIABLES) and the README's configuration table agree."""

from __future__ import annotations

import re
from pathlib import Path

from videobridge.config import KNOWN, SECRETS, VARIABLES, Settings, load_settings

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_defaults() -> dict[str, str]:
    """Variable -> its README default, from the rows whose first cell names variables."""
    found: dict[str, str] = {}
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not re.fullmatch(r"`[A-Z_]+`(, `[A-Z_]+`)*", cells[0]):
            continue
        names = re.findall(r"`([A-Z_]+)`", cells[0])
        defaults = cells[-1].split(", ") if len(names) > 1 else [cells[-1]]
        assert len(defaults) == len(names), line
        found.update(zip(names, defaults, strict=True))
    return found


def test_readme_lists_exactly_the_tables_variables_with_their_defaults() -> None:
    documented = readme_defaults()
    assert sorted(documented) == sorted(KNOWN)
    for var in VARIABLES:
        assert documented[var.name] == var.default, var.name


def test_every_row_sets_a_real_attribute_and_secrets_stay_out_of_repr() -> None:
    attrs = set(Settings.__dataclass_fields__)
    assert all(var.attr in attrs for var in VARIABLES)
    assert len({var.attr for var in VARIABLES}) == len(VARIABLES)
    assert set(SECRETS) == {"DAILY_API_KEY", "DAILY_HOOK_HMAC", "OC_IDENTITY", "VIDEOBRIDGE_ADMIN_TOKEN", "OC_PUBLIC",
                            "VIDEOBRIDGE_STORE"}  # a Redis URL may carry its password
    settings = load_settings(environ={"DAILY_API_KEY": "key-that-is-secret", "VIDEOBRIDGE_ADMIN_TOKEN": "t" * 20,
                                      "VIDEOBRIDGE_STORE": "rediss://u:hunter2@db:6380/0"}, env_file=None)
    assert settings.store_url == "rediss://u:hunter2@db:6380/0"
    assert "key-that-is-secret" not in repr(settings) and "t" * 20 not in repr(settings)
    assert "hunter2" not in repr(settings)


def test_the_docs_hold_no_merge_leftovers():
    root = Path(__file__).parents[1]
    for name in ("README.md", "ARCHITECTURE.md"):
        lines = (root / name).read_text().splitlines()
        assert not [n for n, line in enumerate(lines, 1) if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "======="], name
