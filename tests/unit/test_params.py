"""Per-chat overrides are checked against the model's limits."""

from __future__ import annotations

import pytest

from gateways.service.params import ChatOverrides, apply_overrides
from store.errors import InvalidArgument
from store.records import ChatParams

DEFAULTS = ChatParams(model="gpt-4o-mini", context_tokens=128_000, max_tokens=1024)


def test_no_overrides_keeps_the_defaults() -> None:
    assert apply_overrides(DEFAULTS, ChatOverrides()) == DEFAULTS


def test_overrides_replace_fields_and_a_new_model_brings_its_window() -> None:
    p = apply_overrides(
        DEFAULTS, ChatOverrides(model="gpt-4", temperature=0.3, stop=("x", ""), max_tokens=500)
    )
    assert (p.model, p.context_tokens, p.max_tokens, p.temperature, p.stop) == (
        "gpt-4",
        8192,
        500,
        0.3,
        ("x",),
    )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (ChatOverrides(temperature=2.5), "temperature"),
        (ChatOverrides(top_p=-0.1), "top_p"),
        (ChatOverrides(presence_penalty=3), "presence_penalty"),
        (ChatOverrides(max_tokens=0), "max_tokens"),
        (ChatOverrides(model="gpt-4", max_tokens=8192), "max_tokens"),
        (ChatOverrides(model="no-such-model"), "model"),
        (ChatOverrides(model=" "), "model"),
        (ChatOverrides(stop=("a", "b", "c", "d", "e")), "stop"),
    ],
)
def test_bad_overrides_name_the_field(overrides: ChatOverrides, field: str) -> None:
    with pytest.raises(InvalidArgument, match=field):
        apply_overrides(DEFAULTS, overrides)
