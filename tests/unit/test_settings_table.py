"""The settings table is the one declaration: Settings, --help and README's table all agree with it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from gateways.cli import build_parser
from gateways.settings import ENV_VARS, Settings

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `([A-Z_]+)` \| ([^|]+) \|", re.M)


def readme_settings() -> dict[str, str]:
    """README's Configuration table: key -> default as written (backticks dropped)."""
    text = README.read_text()
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 1)]
    return {key: default.strip().replace("`", "") for key, default in ROW.findall(section)}


def test_every_key_is_declared_once_and_fills_one_settings_attribute() -> None:
    keys = [v.key for v in ENV_VARS]
    assert len(keys) == len(set(keys))
    attributes = {f.name for f in dataclasses.fields(Settings)} - {"warnings"}
    alone = [v.field for v in ENV_VARS if v.field is not None]
    composites = {v.part for v in ENV_VARS if v.part is not None}
    assert len(alone) == len(set(alone)), "two keys fill one attribute"
    assert set(alone) | composites | {"max_tokens_setting"} == attributes
    assert not set(alone) & composites


def test_an_empty_environment_gives_each_attribute_its_declared_default() -> None:
    settings = Settings.from_env({})
    for var in ENV_VARS:
        if var.field is not None:
            assert getattr(settings, var.field) == var.default, var.key


def test_the_readme_lists_exactly_the_declared_keys_with_their_defaults() -> None:
    documented = readme_settings()
    assert sorted(documented) == sorted(v.key for v in ENV_VARS)
    wrong = {v.key: (documented[v.key], v.shown) for v in ENV_VARS if documented[v.key] != v.shown}
    assert not wrong, f"README default differs from the table (README, table): {wrong}"


def test_help_lists_every_key_with_its_help_and_default() -> None:
    text = " ".join(build_parser().format_help().split())
    for var in ENV_VARS:
        default = var.shown if var.has_value else f"({var.shown})"
        assert f"{var.key} {' '.join(var.help.split())} [default: {default}]" in text
