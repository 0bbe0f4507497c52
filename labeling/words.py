"""Numbers, times and names as a person reads them: the one place the pages and the command line
turn counts into sentences, stored UTC times into local ones, column names into headers and
audit details into text. Plain Python (no Streamlit); ui/words.py adds the browser's time zone.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

UTC = dt.timezone.utc
TIME_FORMAT = "%Y-%m-%d %H:%M"

# Column and detail names that the plain rule (underscores to spaces) leaves unclear. Headers stay
# lower case, as the agreement tables (whose names the methods and tests quote) already are.
NAMES = {
    "id": "no.", "at": "when", "image_id": "image", "entity_id": "which", "import_id": "import", "n": "n",
    "sha256": "SHA-256", "image_sha256": "image SHA-256", "manifest_sha256": "manifest SHA-256",
    "subject_hash": "subject (hashed)", "final_label": "final label", "range_version": "range table",
    "mean_seconds": "mean seconds per read", "already_present": "already present",
    "n_images": "images", "n_reads": "reads", "n_double_read": "images read twice", "n_dropped": "pairs dropped",
    "n_predictions": "predictions", "n_matched": "matched to images", "imported_at": "imported",
    "reader_a": "reader A", "reader_b": "reader B", "percent_agreement": "exact agreement",
    "lr_swap_rate": "L/R swap rate", "cohen_kappa": "Cohen's kappa", "kappa_linear": "kappa (linear weights)",
    "kappa_quadratic": "kappa (quadratic weights)", "kappa_degree_linear": "degree kappa (linear weights)",
    "kappa_degree_quadratic": "degree kappa (quadratic weights)", "kappa_laterality": "side kappa",
    "kappa_one_vs_rest": "kappa, one class against the rest", "gwet_ac1": "Gwet's AC1", "gwet_ac2": "Gwet's AC2",
    "fleiss_kappa": "Fleiss' kappa", "fleiss_kappa_quadratic": "Fleiss' kappa (quadratic weights)",
    "krippendorff_alpha": "Krippendorff's alpha", "krippendorff_alpha_ordinal": "Krippendorff's alpha (ordinal)",
    "rgas": "RgAs", "anas": "AnAs", "every_class_in_train": "every class in train",
    "missing_train": "missing from train", "missing_val": "missing from val", "missing_test": "missing from test",
}

# How a measurement ended (asymmetry.measure statuses), as words after "N images".
MEASURE_WORDS = {
    "no_face": "no face found", "multiple_faces": "several faces", "too_small": "too small to hold a face",
    "unreadable": "could not be decoded", "bomb": "too large to decode", "degenerate": "landmarks not measurable",
}
CHECK2_WORDS = {
    "accepted": "accepted", "mismatch": "range class differs (to adjudication)",
    "undetermined": "face not measurable (to adjudication)",
}


def plural(n: int, noun: str, many: str | None = None) -> str:
    """Return "1 image", "2 images", "1,204 images" (`many` for irregular plurals)."""
    n = int(n)
    return f"{n:,} {noun if n == 1 else (many or noun + 's')}"


def join_words(items: Iterable, conjunction: str = "and") -> str:
    """Return "A", "A and B", "A, B and C"."""
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def header(name: str) -> str:
    """Return a column or field name in words: "mean_seconds" -> "mean seconds per read",
    "cohen_kappa_n" -> "n (Cohen's kappa)"."""
    name = str(name)
    if name in NAMES:
        return NAMES[name]
    if name.endswith("_n") and len(name) > 2:
        return f"n ({header(name[:-2])})"
    return name.replace("_", " ").strip() or name


def with_headers(frame: pd.DataFrame) -> pd.DataFrame:
    """Return `frame` with its columns named in words (a copy; the data is unchanged)."""
    return frame.rename(columns={c: header(c) for c in frame.columns})


def parse_time(value) -> dt.datetime | None:
    """Return a stored time (ISO text, datetime or pandas Timestamp) as an aware datetime; naive
    times are UTC, as the database stores them. None for empty or unreadable values."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if not isinstance(value, dt.datetime):
        try:
            value = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def zone(name: str | None) -> dt.tzinfo:
    """Return the IANA time zone `name` (e.g. "Europe/Berlin"), or UTC when it is missing or unknown."""
    if name:
        try:
            return ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return UTC


def local_time(value, tz: dt.tzinfo = UTC, fmt: str = TIME_FORMAT) -> str:
    """Return a stored UTC time as "2026-02-03 14:05" in `tz`; "" when there is none."""
    t = parse_time(value)
    return "" if t is None else t.astimezone(tz).strftime(fmt)


def local_times(frame: pd.DataFrame, columns: Iterable[str], tz: dt.tzinfo = UTC) -> pd.DataFrame:
    """Return `frame` with the given time columns as local time text (a copy)."""
    out = frame.copy()
    for c in columns:
        if c in out.columns:
            out[c] = [local_time(v, tz) for v in out[c]]
    return out


def _value(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(x) for x in v) or "none"
    if isinstance(v, Mapping):
        return "; ".join(f"{header(k).lower()} {_value(x)}" for k, x in v.items()) or "none"
    if v is None:
        return "none"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def describe_detail(detail) -> str:
    """Return an audit event's detail (JSON text or a dict) as "Images: 42 · Seed: 0 · …"; text
    that is not a JSON object is returned as it is."""
    if detail is None or (isinstance(detail, float) and math.isnan(detail)):
        return ""
    if isinstance(detail, str):
        try:
            parsed = json.loads(detail)
        except ValueError:
            return detail
    else:
        parsed = detail
    if not isinstance(parsed, Mapping):
        return detail if isinstance(detail, str) else _value(parsed)
    return " · ".join(f"{header(k)}: {_value(v)}" for k, v in parsed.items())


def sentence(text: str) -> str:
    """Return `text` with a capital first letter and a full stop."""
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def measured_sentence(counts: Mapping[str, int]) -> str:
    """Return measure_pending's counts as a sentence: "98 images measured: 95 with a face found,
    3 without (2 no face found, 1 several faces)"; recomputed ones are said apart."""
    counts = dict(counts)
    reindexed = int(counts.pop("reindexed", 0))
    parts = []
    total = sum(counts.values())
    if total:
        ok = int(counts.get("ok", 0))
        without = {k: v for k, v in counts.items() if k != "ok" and v}
        text = f"{plural(total, 'image')} measured: {ok:,} with a face found"
        if without:
            why = join_words(f"{v:,} {MEASURE_WORDS.get(k, k.replace('_', ' '))}" for k, v in sorted(without.items()))
            text += f", {sum(without.values()):,} without ({why})"
        parts.append(text)
    if reindexed:
        parts.append(f"{plural(reindexed, 'image')} re-measured from stored landmarks")
    return "; ".join(parts) if parts else "no new image to measure"


def check2_sentence(counts: Mapping[str, int]) -> str:
    """Return run_check2's counts as a sentence: "check 2 judged 40 images: 37 accepted, 3 range
    class differs (to adjudication)"."""
    total = sum(int(v) for v in counts.values())
    if not total:
        return "check 2 had nothing to judge (no agreed image, or no range table for it yet)"
    parts = [f"{int(counts[k]):,} {CHECK2_WORDS.get(k, k)}" for k in ("accepted", "mismatch", "undetermined")
             if counts.get(k)]
    parts += [f"{int(v):,} {k}" for k, v in counts.items() if k not in CHECK2_WORDS and v]
    return f"check 2 judged {plural(total, 'image')}: {join_words(parts)}"
