"""WhatsApp media and delivery metrics, through ray.util.metrics like gateways/metrics.py.

Scraped as `ray_chatservice_whatsapp_media_total{kind,outcome}`,
`ray_chatservice_whatsapp_deliveries_total{status}` and
`ray_chatservice_whatsapp_window_closed_total{action}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ray.util.metrics import Counter


@dataclass(frozen=True, slots=True)
class _Metrics:
    media: Counter
    deliveries: Counter
    window_closed: Counter


@cache
def _metrics() -> _Metrics:
    return _Metrics(
        media=Counter(
            "chatservice_whatsapp_media",
            "WhatsApp media by kind (voice, image) and outcome (answered, or why not).",
            ("kind", "outcome"),
        ),
        deliveries=Counter(
            "chatservice_whatsapp_deliveries",
            "Status callbacks that moved an outbound WhatsApp message, by its new status.",
            ("status",),
        ),
        window_closed=Counter(
            "chatservice_whatsapp_window_closed",
            "Answers due after the 24-hour window closed: sent as the template, or withheld.",
            ("action",),
        ),
    )


def media(kind: str, outcome: str) -> None:
    _metrics().media.inc(1, {"kind": kind, "outcome": outcome})


def delivery(status: str) -> None:
    _metrics().deliveries.inc(1, {"status": status})


def window_closed(action: str) -> None:
    _metrics().window_closed.inc(1, {"action": action})
