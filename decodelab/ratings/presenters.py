"""Geometry for the rankings page: CI bars (CSS percentages) and the quality-versus-cost chart (SVG),
computed here so the templates draw without any chart library."""

from __future__ import annotations

from typing import Any

CHART_W, CHART_H = 640, 360
MARGIN = {"left": 64, "right": 24, "top": 20, "bottom": 48}


def _span(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def ci_bars(rows: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    """Each row with left/width/dot as percentages of a shared axis (the zero line where it is in range)."""
    usable = [r for r in rows if r.get("ci_lower") is not None and r.get("ci_upper") is not None]
    if not usable:
        return [{**r, "label": labels.get(r["config"], r["config"]), "bar": None} for r in rows]
    lo, hi = _span([v for r in usable for v in (r["ci_lower"], r["ci_upper"], r["score"])])

    def pct(v: float) -> float:
        return round(100 * (v - lo) / (hi - lo), 2)

    zero = pct(0.0) if lo < 0 < hi else None
    out = []
    for r in rows:
        bar = None
        if r.get("ci_lower") is not None and r.get("ci_upper") is not None:
            bar = {
                "left": pct(r["ci_lower"]),
                "width": max(pct(r["ci_upper"]) - pct(r["ci_lower"]), 0.4),
                "dot": pct(r["score"]),
                "zero": zero,
            }
        out.append({**r, "label": labels.get(r["config"], r["config"]), "bar": bar})
    return out


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    step = (hi - lo) / (n - 1)
    return [lo + i * step for i in range(n)]


def quality_cost_chart(points: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, Any] | None:
    """SVG coordinates: one point per configuration with a vertical CI line; the Pareto frontier as a path."""
    if not points:
        return None
    plot_w = CHART_W - MARGIN["left"] - MARGIN["right"]
    plot_h = CHART_H - MARGIN["top"] - MARGIN["bottom"]
    x_lo, x_hi = _span([p["cost"] for p in points])
    x_lo = max(x_lo, 0.0)
    ys = [p["score"] for p in points]
    ys += [p[k] for p in points for k in ("ci_lower", "ci_upper") if p.get(k) is not None]
    y_lo, y_hi = _span(ys)

    def x(v: float) -> float:
        return round(MARGIN["left"] + plot_w * (v - x_lo) / (x_hi - x_lo), 1)

    def y(v: float) -> float:
        return round(MARGIN["top"] + plot_h * (1 - (v - y_lo) / (y_hi - y_lo)), 1)

    drawn = []
    for p in sorted(points, key=lambda p: p["cost"]):
        drawn.append(
            {
                **p,
                "label": labels.get(p["config"], p["config"]),
                "cx": x(p["cost"]),
                "cy": y(p["score"]),
                "lx": x(p["cost"]) + 8,
                "ly": y(p["score"]) - 8,
                "y1": y(p["ci_upper"]) if p.get("ci_upper") is not None else None,
                "y2": y(p["ci_lower"]) if p.get("ci_lower") is not None else None,
            }
        )
    frontier = [p for p in drawn if p["on_frontier"]]
    return {
        "width": CHART_W,
        "height": CHART_H,
        "left": MARGIN["left"],
        "right": CHART_W - MARGIN["right"],
        "top": MARGIN["top"],
        "bottom": CHART_H - MARGIN["bottom"],
        "points": drawn,
        "frontier_path": " ".join(f"{p['cx']},{p['cy']}" for p in frontier),
        "x_ticks": [{"pos": x(v), "text": f"{v:.2f}"} for v in _ticks(x_lo, x_hi)],
        "y_ticks": [{"pos": y(v), "text": f"{v:.2f}"} for v in _ticks(y_lo, y_hi)],
        "x_mid": (MARGIN["left"] + CHART_W - MARGIN["right"]) / 2,
        "y_mid": (MARGIN["top"] + CHART_H - MARGIN["bottom"]) / 2,
    }


def matrix_rows(matrix: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """Win/tie/loss cells: row i against column j reads wins-ties-losses of i (ties include both-bad)."""
    configs = matrix["configs"]
    wins, ties, bad = matrix["wins"], matrix["ties"], matrix["both_bad"]
    rows = []
    for i, ci in enumerate(configs):
        cells = []
        for j in range(len(configs)):
            if i == j:
                cells.append(None)
                continue
            n = wins[i][j] + wins[j][i] + ties[i][j] + bad[i][j]
            cells.append({"w": wins[i][j], "t": ties[i][j] + bad[i][j], "l": wins[j][i], "n": n})
        rows.append({"label": labels.get(ci, ci), "cells": cells})
    return {"headers": [labels.get(c, c) for c in configs], "rows": rows}


def likert_tables(summary: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    """One table per criterion, configurations best first, with CI bars on the 1-5 scale."""
    by_criterion: dict[str, list[dict[str, Any]]] = {}
    for row in summary:
        by_criterion.setdefault(row["criterion"], []).append(row)
    tables = []
    for criterion, rows in by_criterion.items():
        out = []
        for r in sorted(rows, key=lambda r: -r["mean"]):
            bar = None
            if r["ci_lower"] is not None:
                lo, hi = max(r["ci_lower"], 1.0), min(r["ci_upper"], 5.0)
                bar = {"left": round(25 * (lo - 1), 2), "width": max(round(25 * (hi - lo), 2), 0.4)}
            out.append(
                {**r, "label": labels.get(r["config"], r["config"]), "bar": bar, "dot": round(25 * (r["mean"] - 1), 2)}
            )
        tables.append({"criterion": criterion, "rows": out})
    return tables
