"""The per-model correction: learned from reported usage, smoothed, outliers and truncation set aside."""

from __future__ import annotations

import pytest

from actors.state import scale_for
from gateways.llm.calibration import Calibration, Seen, shrink_target


def test_a_model_no_server_has_reported_on_is_taken_as_counted() -> None:
    c = Calibration()
    assert c.correction("toy") == 1.0 and c.server_context("toy") is None


def test_the_first_report_is_taken_whole_then_smoothed_towards_new_ones() -> None:
    c = Calibration()
    assert c.observe("toy", 1000, 1800) is Seen.LEARNED
    assert c.correction("toy") == pytest.approx(1.8)
    c.observe("toy", 1000, 2000)
    assert 1.8 < c.correction("toy") < 2.0
    for _ in range(20):
        c.observe("toy", 1000, 2000)
    assert c.correction("toy") == pytest.approx(2.0, rel=0.01)
    assert c.correction("other") == 1.0  # per model


def test_an_outlier_is_not_learned_but_a_lasting_change_is() -> None:
    c = Calibration()
    for _ in range(5):
        c.observe("toy", 1000, 1500)
    assert c.observe("toy", 1000, 3900) is Seen.OUTLIER
    assert c.correction("toy") == pytest.approx(1.5)
    seen = [c.observe("toy", 1000, 3600) for _ in range(8)]
    assert Seen.LEARNED in seen and c.correction("toy") > 2.5  # the recent median moved


def test_a_count_far_below_the_estimate_is_truncation_not_a_ratio() -> None:
    c = Calibration()
    c.observe("toy", 1000, 1800)
    assert c.observe("toy", 3000, 1024) is Seen.TRUNCATED  # 1024 of about 5400 expected
    assert c.correction("toy") == pytest.approx(1.8)


@pytest.mark.parametrize(("counted", "reported"), [(1000, 0), (10, 30)])
def test_no_count_or_a_tiny_prompt_teaches_nothing(counted: int, reported: int) -> None:
    c = Calibration()
    assert c.observe("toy", counted, reported) is Seen.IGNORED
    assert c.correction("toy") == 1.0


def test_corrections_stay_within_bounds() -> None:
    c = Calibration()
    c.observe("big", 100, 10_000)
    assert c.correction("big") == 4.0
    c.observe("small", 1000, 600)
    assert c.correction("small") == 0.6


def test_the_smallest_plausible_context_a_server_reports_is_kept() -> None:
    c = Calibration()
    assert c.learn_context("toy", 2048, 8192) and c.learn_context("toy", 4096, 8192)
    assert not c.learn_context("toy", 3, 100)  # not believed: it would starve every chat of the model
    # Nor far below the chat's configured context: a broken server, or a message that echoes
    # a user's text ("...maximum context length is 100 tokens...") must not shrink other chats.
    assert not c.learn_context("toy", 500, 128_000)
    assert c.server_context("toy") == 2048


def test_the_scale_fits_a_chats_budget_to_a_smaller_server() -> None:
    assert scale_for(1.5, None, 8192, 1024) == 1.5
    assert scale_for(1.5, 16384, 8192, 1024) == 1.5
    # A 4096-token server under a chat that believes in 8192: budget 7168 must hold 3072 of its tokens.
    assert scale_for(1.0, 4096, 8192, 1024) == pytest.approx(7168 / 3072)


def test_shrinking_uses_the_servers_numbers_when_it_gave_them() -> None:
    # It counted 1122 tokens of what we counted as 600 (1.87 each); its context is 1024, 64 reserved.
    target = shrink_target(600, 64, 1.0, 1122, 1024)
    assert target == int((1024 - 64) / (1122 / 600) * 0.95)
    # Only the context: our correction converts it.
    assert shrink_target(600, 64, 2.0, None, 1024) == int(960 / 2.0 * 0.95)
    # Nothing said, or an absurd context: a quarter goes.
    assert shrink_target(600, 64, 1.0, None, None) == 450
    assert shrink_target(600, 64, 1.0, 700, 10) == 450
    # max_tokens alone fills the server: everything evictable goes.
    assert shrink_target(600, 2048, 1.0, 700, 1024) == 1
    # Never a target that keeps the whole prompt.
    assert shrink_target(600, 64, 0.5, 300, 100_000) == 599
