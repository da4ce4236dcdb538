"""What a governance reader asks of three kinds of check, read from their monitoring records.

    window(kind, body)        one run: the figures of its window (None for other kinds)
    period(kind, windows)     the period: per metric over its windows, the worst features, ...
    KINDS                     the kinds that have a section

- estimated_performance: per window and metric the estimate, its band and the limit, and where
  labels arrived the realised value and the estimate's error; over the period the windows
  whose realised value fell inside the band.
- intended_use: the shares outside the envelope, missing a required field and novel, and the
  features most often outside the envelope (with the categories seen that it does not allow).
- oversight: review, override, escalation and complaint rates and the median time to review.

The period report (`report`) shows these as a section per check; the OSCAL export puts a
window's figures on its observation and on the finding of the nonconformity it opened.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

JsonDict = dict[str, Any]
PREFIX = "estimated_"
WINDOWS_SHOWN = 48  # the latest windows listed one by one; the summaries cover every window
WORST_FEATURES = 5
INTENDED_USE = ("outside_envelope_share", "missing_required_share", "novelty_share")
OVERSIGHT = (
    "review_rate",
    "override_rate",
    "escalation_rate",
    "complaint_rate",
    "median_review_seconds",
)
OVERSIGHT_COUNTS = ("decisions", "needing_review", "reviewed", "overridden", "escalated")


def _measurements(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((body.get("result") or {}).get("measurements") or ())


def _base(body: Mapping[str, Any]) -> JsonDict:
    result, window = body.get("result") or {}, body.get("window") or {}
    return {
        "record_id": body.get("record_id"),
        "at": body.get("executed_at"),
        "window_end": window.get("end"),
        "outcome": result.get("outcome"),
    }


def _limit(m: Mapping[str, Any]) -> float | None:
    return (m.get("threshold") or {}).get("breach")


def _rule(m: Mapping[str, Any]) -> str | None:
    """`value < 0.9`: when the measurement breaches, with its limit written in."""
    t = m.get("threshold") or {}
    when = t.get("breaches_when")
    return None if not when else str(when).replace("breach", f"{t.get('breach'):.6g}")


def _estimate_window(body: Mapping[str, Any]) -> JsonDict:
    metrics = {}
    for m in _measurements(body):
        name = str(m.get("metric") or "")
        if not name.startswith(PREFIX):
            continue
        p = m.get("params") or {}
        metrics[name.removeprefix(PREFIX)] = {
            "estimate": m.get("value"),
            "band_low": p.get("band_low"),
            "band_high": p.get("band_high"),
            "limit": p.get("limit"),
            "realised": p.get("realised_value"),
            "error": p.get("estimate_error"),
            "labelled_rows": p.get("labelled_rows"),
            "scored_rows": m.get("n_current"),
            "verdict": m.get("verdict"),
        }
    return {**_base(body), "metrics": metrics}


def _intended_use_window(body: Mapping[str, Any]) -> JsonDict:
    shares: JsonDict = {}
    features: JsonDict = {}
    unexpected: set[str] = set()
    examples: JsonDict = {}
    for m in _measurements(body):
        name = m.get("metric")
        if name not in INTENDED_USE:
            continue
        p = m.get("params") or {}
        if m.get("feature"):
            features[str(m["feature"])] = m.get("value")
            unexpected.update(p.get("unexpected_categories") or ())
            continue
        shares[str(name)] = {"value": m.get("value"), "limit": _limit(m), "n": m.get("n_current")}
        examples[str(name)] = list(p.get("examples") or ())
    return {
        **_base(body),
        "shares": shares,
        "features": features,
        "unexpected_categories": sorted(unexpected),
        "examples": examples,
    }


def _oversight_window(body: Mapping[str, Any]) -> JsonDict:
    rates: JsonDict = {}
    counts: JsonDict = {}
    for m in _measurements(body):
        if m.get("metric") not in OVERSIGHT:
            continue
        rates[str(m["metric"])] = {
            "value": m.get("value"),
            "breaches_when": _rule(m),
            "n": m.get("n_current"),
            "verdict": m.get("verdict"),
        }
        params = m.get("params") or {}
        counts = {k: params.get(k) for k in OVERSIGHT_COUNTS if k in params} or counts
    return {**_base(body), "rates": rates, "counts": counts}


# --- the period ------------------------------------------------------------------------------


def _spread(values: Sequence[float | None]) -> JsonDict:
    known = [float(v) for v in values if v is not None]
    if not known:
        return {"windows": 0, "mean": None, "min": None, "max": None}
    return {
        "windows": len(known),
        "mean": round(statistics.fmean(known), 6),
        "min": round(min(known), 6),
        "max": round(max(known), 6),
    }


def _latest(values: Sequence[Any]) -> Any:
    return next((v for v in reversed(values) if v is not None), None)


def _estimate_period(windows: Sequence[JsonDict]) -> JsonDict:
    names = list(dict.fromkeys(n for w in windows for n in w["metrics"]))
    metrics = {}
    for name in names:
        rows = [w["metrics"][name] for w in windows if name in w["metrics"]]
        labelled = [r for r in rows if r["realised"] is not None and r["band_low"] is not None]
        errors = [abs(r["error"]) for r in rows if r["error"] is not None]
        metrics[name] = {
            "estimate": _spread([r["estimate"] for r in rows]),
            "limit": _latest([r["limit"] for r in rows]),
            "windows": len(rows),
            "warn": sum(r["verdict"] == "warn" for r in rows),
            "breach": sum(r["verdict"] == "breach" for r in rows),
            "insufficient_data": sum(r["verdict"] == "insufficient_data" for r in rows),
            "labelled_windows": len(labelled),
            "realised_inside_band": sum(
                r["band_low"] <= r["realised"] <= r["band_high"] for r in labelled
            ),
            "realised": _spread([r["realised"] for r in rows]),
            "mean_error": round(statistics.fmean(r["error"] for r in labelled), 6)
            if labelled
            else None,
            "mean_absolute_error": round(statistics.fmean(errors), 6) if errors else None,
        }
    return {"metrics": metrics}


def _intended_use_period(windows: Sequence[JsonDict]) -> JsonDict:
    shares = {}
    for name in INTENDED_USE:
        rows = [w["shares"][name] for w in windows if name in w["shares"]]
        if not rows:
            continue
        limit = _latest([r["limit"] for r in rows])
        shares[name] = {
            **_spread([r["value"] for r in rows]),
            "latest": _latest([r["value"] for r in rows]),
            "limit": limit,
            "windows_above_limit": sum(
                r["value"] is not None and r["limit"] is not None and r["value"] > r["limit"]
                for r in rows
            ),
        }
    by_feature: dict[str, list[float | None]] = {}
    for w in windows:
        for f, v in w["features"].items():
            by_feature.setdefault(f, []).append(v)
    worst = sorted(
        (
            {"feature": f, **_spread(vs), "windows_outside": sum(bool(v) for v in vs)}
            for f, vs in by_feature.items()
        ),
        key=lambda r: (-(r["mean"] or 0.0), -(r["max"] or 0.0), r["feature"]),
    )
    return {
        "shares": shares,
        "worst_features": [r for r in worst if r["max"]][:WORST_FEATURES],
        "unexpected_categories": sorted({c for w in windows for c in w["unexpected_categories"]})[
            :20
        ],
    }


def _oversight_period(windows: Sequence[JsonDict]) -> JsonDict:
    rates = {}
    for name in OVERSIGHT:
        rows = [w["rates"][name] for w in windows if name in w["rates"]]
        if not rows:
            continue
        spread = _spread([r["value"] for r in rows])
        known = [float(r["value"]) for r in rows if r["value"] is not None]
        rates[name] = {
            **spread,
            "median": round(statistics.median(known), 6) if known else None,
            "latest": _latest([r["value"] for r in rows]),
            "breaches_when": _latest([r["breaches_when"] for r in rows]),
            "warn": sum(r["verdict"] == "warn" for r in rows),
            "breach": sum(r["verdict"] == "breach" for r in rows),
        }
    return {"rates": rates}


WINDOW: dict[str, Callable[[Mapping[str, Any]], JsonDict]] = {
    "estimated_performance": _estimate_window,
    "intended_use": _intended_use_window,
    "oversight": _oversight_window,
}
PERIOD: dict[str, Callable[[Sequence[JsonDict]], JsonDict]] = {
    "estimated_performance": _estimate_period,
    "intended_use": _intended_use_period,
    "oversight": _oversight_period,
}
KINDS = frozenset(WINDOW)


def window(kind: str | None, body: Mapping[str, Any]) -> JsonDict | None:
    """The figures of one run's window, for the kinds that have a section; None otherwise and
    for a run that measured nothing (an error, a run not made)."""
    if kind not in WINDOW or not _measurements(body):
        return None
    return WINDOW[kind](body)


def period(kind: str, windows: Sequence[JsonDict]) -> JsonDict:
    """The section of one check over a period: its summary over every window and the latest
    WINDOWS_SHOWN windows one by one, newest last."""
    return {
        "kind": kind,
        "windows_total": len(windows),
        **PERIOD[kind](windows),
        "windows": list(windows[-WINDOWS_SHOWN:]),
    }
