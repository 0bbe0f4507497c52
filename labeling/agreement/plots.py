"""Plotly figures for the agreement audit, and the one-file HTML report that holds them.

Builders take the DataFrames that labeling.agreement.summary computes and return go.Figure; no Streamlit
here, so the app, the CLI and the report all draw the same pictures. Classes appear in scale
order (L3 .. L1, N, R1 .. R3), as the tables give them.
"""
from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from labeling.agreement.summary import CLASSES, Audit, normalise_rows
from labeling.agreement.report import methods_paragraph, overview

# One colour per class: greys for N, blues for left, oranges for right, darker = more severe.
CLASS_COLOURS = {"N": "#7f7f7f", "L1": "#9ecae1", "L2": "#4292c6", "L3": "#08519c",
                 "R1": "#fdae6b", "R2": "#f16913", "R3": "#a63603"}


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False},
                      annotations=[{"text": message, "showarrow": False, "font": {"size": 14}}])
    return fig


def confusion_heatmap(confusion: pd.DataFrame, *, title: str = "Confusion matrix",
                      normalise: bool = False) -> go.Figure:
    """Return a heatmap of a 7x7 confusion DataFrame (reference in rows, top to bottom in class
    order); with normalise=True each row is divided by its total, as in paper Figure 4."""
    z = normalise_rows(confusion) if normalise else confusion
    counts = confusion.to_numpy()
    text = [[("" if math.isnan(v) else f"{v:.2f}") if normalise else f"{int(c)}"
             for v, c in zip(row_z, row_c)] for row_z, row_c in zip(z.to_numpy(float), counts)]
    fig = go.Figure(go.Heatmap(
        z=z.to_numpy(float), x=[str(c) for c in z.columns], y=[str(r) for r in z.index], text=text,
        texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1 if normalise else None,
        customdata=counts, hovertemplate="%{y} → %{x}: %{customdata} images<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=str(confusion.columns.name or ""),
                      yaxis_title=str(confusion.index.name or ""), yaxis_autorange="reversed")
    return fig


_DAY_MS = 86_400_000
_PERIOD = {"D": ("day", pd.Timedelta(days=1)), "W": ("week", pd.Timedelta(weeks=1)),
           "M": ("month", pd.Timedelta(days=30.44))}


def time_axis(periods, freq: str) -> dict:
    """An x axis for per-period values: its range padded by half a period on each side, ticks on
    whole days, weeks or months (at most about ten of them) and a date format to match. Plotly's
    own choice for a few points close together is ticks in fractions of a millisecond."""
    name, step = _PERIOD.get(str(freq)[:1].upper(), _PERIOD["W"])
    t = pd.to_datetime(pd.Series(periods))
    n = max(1, int(round((t.max() - t.min()) / step)) + 1) if len(t) else 1
    every = max(1, math.ceil(n / 10))
    axis = {"type": "date", "range": [t.min() - step / 2, t.max() + step / 2] if len(t) else None,
            "title": f"{name} in which an image got its second graded read", "tickformat": "%d %b %Y"}
    if name == "month":
        axis.update(dtick=f"M{every}", tickformat="%b %Y")
    else:
        axis.update(dtick=every * step.days * _DAY_MS, tick0=t.min() if len(t) else None)
    return axis


def agreement_over_time_figure(over_time: pd.DataFrame, *, title: str = "Agreement over time") -> go.Figure:
    """Return percent agreement and Cohen's kappa per period (agreement.agreement_over_time),
    with the number of images per period as bars on a second axis, on a time_axis."""
    if over_time is None or not len(over_time):
        return _empty(title, "No image has two graded reads yet.")
    freq = str(over_time["freq"].iloc[0]) if "freq" in over_time else "W"
    _, step = _PERIOD.get(freq[:1].upper(), _PERIOD["W"])
    fig = go.Figure()
    fig.add_bar(x=over_time["period"], y=over_time["n_images"], name="images double-read", yaxis="y2",
                marker_color="#d9d9d9", opacity=0.6, width=0.8 * step.total_seconds() * 1000)
    fig.add_scatter(x=over_time["period"], y=over_time["percent_agreement"], mode="lines+markers",
                    name="exact agreement")
    fig.add_scatter(x=over_time["period"], y=over_time["cohen_kappa"], mode="lines+markers", name="Cohen's kappa")
    fig.update_layout(title=title, xaxis=time_axis(over_time["period"], freq),
                      yaxis={"title": "agreement", "range": [min(0, float(
                          np.nanmin(over_time["cohen_kappa"].to_numpy(float), initial=0))), 1.02]},
                      yaxis2={"title": "images", "overlaying": "y", "side": "right", "showgrid": False,
                              "tickmode": "auto", "rangemode": "tozero", "tickformat": ",d"},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0})
    return fig


def label_distribution_figure(distribution: pd.DataFrame, *,
                              title: str = "Labels per reader (share of each reader's reads)") -> go.Figure:
    """Return grouped bars of each reader's share per label (agreement.reader_label_distribution),
    the pooled share as a line: a reader far from the line labels differently (bias)."""
    if distribution is None or not len(distribution):
        return _empty(title, "No reads yet.")
    labels = list(dict.fromkeys(distribution["label"]))
    fig = go.Figure()
    for reader, sub in distribution.groupby("reader", sort=True):
        sub = sub.set_index("label").reindex(labels)
        fig.add_bar(x=labels, y=sub["share"], name=str(reader), customdata=sub["n"],
                    hovertemplate="%{x}: %{y:.1%} (%{customdata} reads)<extra>" + html.escape(str(reader)) + "</extra>")
    pooled = distribution.drop_duplicates("label").set_index("label").reindex(labels)["pooled_share"]
    fig.add_scatter(x=labels, y=pooled, mode="markers+lines", name="all readers",
                    line={"color": "black", "dash": "dot"})
    fig.update_layout(title=title, barmode="group", yaxis={"title": "share", "tickformat": ".0%"})
    return fig


def reading_time_figure(times: pd.DataFrame, *, title: str = "Reading time per reader") -> go.Figure:
    """Return one box per reader drawn from precomputed percentiles (agreement.reading_time_summary):
    box 25th-75th, line median, whiskers 5th-95th, so 100,000 reads stay a small figure."""
    if times is None or not len(times):
        return _empty(title, "No reading times recorded.")
    names = [str(r) for r in times["reader"]]
    fig = go.Figure(go.Box(
        x=names, q1=times["p25"], median=times["median"], q3=times["p75"], lowerfence=times["p05"],
        upperfence=times["p95"], mean=times["mean"], name="seconds", boxpoints=False))
    fig.update_layout(title=title, yaxis_title="seconds (whiskers: 5th-95th percentile)", showlegend=False)
    return fig


def asymmetry_scatter(points: pd.DataFrame, boxes: pd.DataFrame | None = None, *, movement: str | None = None,
                      highlight: dict | None = None) -> go.Figure:
    """Return the signed RgAs/AnAs scatter of one movement with the range classifier's boxes.

    points: rgas, anas, label (optionally image_id); boxes: cls, rgas_lo, rgas_hi, anas_lo,
    anas_hi, n, enough (a box without enough images is drawn dashed and says so). highlight: one
    image's point, {"rgas": .., "anas": .., "label": ..}, drawn as a large star.
    """
    title = f"RgAs / AnAs{' — ' + movement if movement else ''}"
    fig = go.Figure()
    if points is not None and len(points):
        for cls in [c for c in CLASSES if c in set(points["label"])] + sorted(
                set(points["label"].dropna().astype(str)) - set(CLASSES)):
            sub = points[points["label"] == cls]
            fig.add_trace(go.Scattergl(x=sub["rgas"], y=sub["anas"], mode="markers", name=str(cls),
                                       marker={"color": CLASS_COLOURS.get(cls, "#444"), "size": 5, "opacity": 0.6}))
    for _, b in (boxes if boxes is not None else pd.DataFrame()).iterrows():
        if any(pd.isna(b[k]) for k in ("rgas_lo", "rgas_hi", "anas_lo", "anas_hi")):
            continue
        enough = bool(b.get("enough", True))
        colour = CLASS_COLOURS.get(b["cls"], "#444")
        rgb = ", ".join(str(int(colour[i:i + 2], 16)) for i in (1, 3, 5))
        fig.add_shape(type="rect", x0=b["rgas_lo"], x1=b["rgas_hi"], y0=b["anas_lo"], y1=b["anas_hi"],
                      line={"color": colour, "width": 2, "dash": "solid" if enough else "dash"},
                      fillcolor=f"rgba({rgb}, {0.15 if enough else 0.04})", layer="below")
        label = f"{b['cls']} (n={int(b['n'])})" + ("" if enough else " too few")
        fig.add_annotation(x=b["rgas_hi"], y=b["anas_hi"], text=html.escape(label), showarrow=False,
                           xanchor="right", yanchor="bottom", font={"color": colour, "size": 10})
    if highlight is not None:
        fig.add_scatter(x=[highlight["rgas"]], y=[highlight["anas"]], mode="markers",
                        name=html.escape(str(highlight.get("label") or "this image")),
                        marker={"symbol": "star", "size": 18, "color": "crimson",
                                "line": {"color": "black", "width": 1}})
    if not len(fig.data) and not fig.layout.shapes:
        return _empty(title, "No asymmetry measurements.")
    fig.update_layout(title=title, xaxis_title="signed RgAs (+ = patient's left)", yaxis_title="signed AnAs (degrees)")
    return fig


def with_intervals(frame: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Fold each x, x_lo, x_hi column trio into one 'x [lo, hi]' text column for reading."""
    out = frame.copy()
    for col in [c for c in frame.columns if f"{c}_lo" in frame.columns and f"{c}_hi" in frame.columns]:
        v, lo, hi = frame[col].astype(float), frame[f"{col}_lo"].astype(float), frame[f"{col}_hi"].astype(float)
        out[col] = [("—" if math.isnan(a) else f"{a:.{digits}f}")
                    + ("" if math.isnan(b) else f" [{b:.{digits}f}, {c:.{digits}f}]") for a, b, c in zip(v, lo, hi)]
        out = out.drop(columns=[f"{col}_lo", f"{col}_hi"])
    return out


def _table_html(frame: pd.DataFrame, digits: int = 3) -> str:
    if frame is None or not len(frame):
        return "<p><em>Nothing to show.</em></p>"
    return with_intervals(frame, digits).to_html(
        index=False, escape=True, na_rep="—", float_format=lambda v: f"{v:.{digits}f}", border=0, classes="t")


def report_html(result: Audit, *, points: pd.DataFrame | None = None, boxes: pd.DataFrame | None = None,
                title: str = "Agreement audit", methods: str | None = None) -> str:
    """Return one self-contained HTML page (plotly.js inline, no network needed): a SYNTHETIC
    banner when any image is synthetic, the headline (the page's), the methods paragraph (given,
    or methods_paragraph(result)), our figures beside the published ones, every table and the
    figures. points/boxes as for asymmetry_scatter, with a `movement` column to get one scatter
    per movement."""
    figures: list[tuple[str, go.Figure]] = []
    for kind, comps, norm in (("Reader vs reader", result.reader_pairs, False),
                              ("Reader vs final", result.readers_vs_final, False),
                              ("Range class vs final", result.asymmetry, False),
                              ("Model vs truth (normalised by true class)", result.models, True)):
        for c in comps:
            figures.append((f"{kind}: {c.name}", confusion_heatmap(c.confusion, title=f"{kind}: {c.name}",
                                                                    normalise=norm)))
    figures += [("Agreement over time", agreement_over_time_figure(result.over_time)),
                ("Labels per reader", label_distribution_figure(result.label_distribution)),
                ("Reading time", reading_time_figure(result.reading_times))]
    if points is not None and len(points):
        groups = points.groupby("movement", sort=True) if "movement" in points else [(None, points)]
        for mv, pts in groups:
            per_movement = boxes is not None and mv is not None and "movement" in boxes
            bx = boxes[boxes["movement"] == mv] if per_movement else boxes
            figures.append((f"Asymmetry {mv or ''}", asymmetry_scatter(pts, bx, movement=mv)))

    banner = []
    if result.synthetic:
        banner = [f"<div class='synthetic'>SYNTHETIC DATA: {result.n_synthetic_images} of the images read are "
                  "synthetic demo faces, not patients. Nothing here describes a study.</div>"]
    parts = [*banner, f"<h1>{html.escape(title)}</h1>",
             "<p>Research annotation tool, not a diagnostic device. Measures and methods: docs/agreement.md. "
             f"Intervals: {html.escape(str(result.settings.get('ci', '')))}; {int(result.settings.get('n_boot', 0))} "
             f"resamples, seed {html.escape(str(result.settings.get('seed')))}, resampling unit "
             f"{html.escape(str(result.settings.get('resampling_unit', '')))}.</p>",
             "<h2>Headline</h2>", _table_html(overview(result)),
             "<h2>Methods paragraph</h2>",
             f"<p class='methods'>{html.escape(methods or methods_paragraph(result))}</p>",
             "<h2>Ours beside the published figures</h2>", _table_html(result.headline())]
    for name, frame in result.tables().items():
        if name in ("headline",) or name.startswith(("confusion ", "per_class model", "per_movement model")):
            continue
        parts += [f"<h2>{html.escape(name.replace('_', ' '))}</h2>", _table_html(frame)]
    parts.append("<h2>Figures</h2>")
    for i, (name, fig) in enumerate(figures):
        parts.append(f"<h3>{html.escape(name)}</h3>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0), default_height="480px"))
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
             ".synthetic{background:#b00020;color:#fff;font-weight:bold;padding:.6em 1em;font-size:1.2em}"
             ".methods{background:#f6f6f6;padding:.8em;line-height:1.5}"
             "table.t{border-collapse:collapse;font-size:12px;margin-bottom:1em}"
             "table.t td,table.t th{border:1px solid #ddd;padding:2px 6px;text-align:right}")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{'SYNTHETIC — ' if result.synthetic else ''}{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>"
            + "\n".join(parts) + "</body></html>")
