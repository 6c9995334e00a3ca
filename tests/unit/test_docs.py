"""The README is the config reference: every key the settings model knows is documented there."""

from __future__ import annotations

from pathlib import Path

from monitor.config import REFERENCE_END, REFERENCE_START, config_keys, reference_table
from monitor.core.events import REASONS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_config_key_is_in_the_readme() -> None:
    missing = [key for key, _, _ in config_keys() if f"`{key}`" not in README]
    assert not missing, f"config keys missing from README.md (run `make docs`): {missing}"


def test_the_readme_reference_is_the_generated_one() -> None:
    start = README.index(REFERENCE_START) + len(REFERENCE_START)
    assert README[start : README.index(REFERENCE_END)].strip() == reference_table(), "run `make docs`"


def test_every_key_has_a_description() -> None:
    assert all(description for _, _, description in config_keys())


def test_every_dead_letter_reason_is_in_the_readme() -> None:
    missing = [reason for reason in REASONS if f"`{reason}`" not in README]
    assert not missing, f"dead-letter reasons missing from README.md: {missing}"


def test_readme_shows_the_two_commands() -> None:
    assert "make demo" in README and "make test" in README
