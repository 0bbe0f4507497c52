"""What the Agreement page, the command line and the HTML report say about an Audit in words:
the headline table (our measures, their intervals and the published figures beside them) and a
methods paragraph an auditor can paste into a manuscript.

Both come from the same rows (`headline_rows`) and the same number format (`fmt`), so the
paragraph's numbers are the page's numbers (tests/test_agreement_page.py checks the page itself).
No Streamlit, no SQL.
"""
from __future__ import annotations

import math
import platform
from dataclasses import dataclass

import numpy as np
import pandas as pd

from labeling.agreement import measures as am
from labeling.agreement.summary import Audit, Estimate, published_figures
from labeling.agreement.stats import BOOTSTRAP_METHOD, PROPORTION_METHOD

DIGITS = 3


@dataclass(frozen=True)
class HeadlineRow:
    """One headline measure: its name (agreement_measures.DEFINITIONS, or asymmetry/model
    accuracy), its label, the estimate and the published figure it may be compared with."""
    name: str
    label: str
    estimate: Estimate
    published: str | None


def headline_rows(result: Audit) -> list[HeadlineRow]:
    """The measures the page, the command line and the methods paragraph all report, in order:
    the reads' measures, the check rates, the asymmetry method and every model run (each run on
    its own: picking the best run would bias its figure upwards)."""
    r = result.reads
    rows = [HeadlineRow("percent_agreement", "exact agreement (all graded reads of an image the same class)",
                        r.percent_agreement, None),
            HeadlineRow("side_agreement", "side agreement", r.side_agreement, "side_agreement"),
            HeadlineRow("degree_agreement", "degree agreement", r.degree_agreement, "degree_agreement"),
            HeadlineRow("lr_swap_rate", "left/right swap rate (images with a left and a right read)",
                        r.lr_swap_rate, None),
            HeadlineRow("cohen_kappa", "Cohen's kappa (first vs second read)", r.cohen_kappa, "cohen_kappa")]
    for name in ("kappa_linear", "kappa_quadratic", "kappa_degree_linear", "kappa_degree_quadratic",
                 "kappa_laterality", "gwet_ac1", "gwet_ac2", "fleiss_kappa", "fleiss_kappa_quadratic",
                 "krippendorff_alpha", "krippendorff_alpha_ordinal"):
        rows.append(HeadlineRow(name, am.label(name), r.measures[name],
                                "fleiss_kappa" if name == "fleiss_kappa" else None))
    rows += [HeadlineRow("check1", check1_label(result), result.checks.check1, "check1"),
             HeadlineRow("check2", "check-2 acceptance rate (range class matched the consensus)",
                         result.checks.check2, "check2")]
    if result.asymmetry:
        a = result.asymmetry[0]
        rows.append(HeadlineRow("asymmetry_accuracy", f"asymmetry method accuracy ({a.name})", a.agreement,
                                "asymmetry_accuracy"))
    for c in result.models:
        arch = f", {c.meta['arch']}" if c.meta.get("arch") else ""
        rows.append(HeadlineRow("model_accuracy", f"model accuracy, run {c.name}{arch}", c.agreement,
                                "model_accuracy"))
    return rows


def check1_label(result: Audit) -> str:
    """The check-1 row's label: it says when the rate is the exact agreement's number again (two
    reads per image and no cannot-grade read make them the same), rather than show one number
    under two names as if they were two findings."""
    c, e = result.checks.check1, result.reads.percent_agreement
    same = c.n == e.n and math.isfinite(c.value) and math.isfinite(e.value) and abs(c.value - e.value) < 1e-12
    return ("check-1 consensus rate (workflow: all reads in, cannot-grade counts as disagreement)"
            + (" = exact agreement on these data" if same else ""))


def fmt(value: float) -> str:
    """A number as the page, the command line and the paragraph print it."""
    return "—" if value is None or not math.isfinite(value) else f"{value:.{DIGITS}f}"


def interval(e: Estimate) -> str:
    """'0.912–1.000', or '' without an interval."""
    return "" if not math.isfinite(e.ci_low) else f"{fmt(e.ci_low)}–{fmt(e.ci_high)}"


def _published(key: str | None, pub: pd.DataFrame) -> str:
    hits = pub[pub["compares_with"] == key] if key else pub.iloc[0:0]
    return "; ".join(f"{_range(p['low'], p['high'])} ({p['scale']} {p['statistic']}, {p['source']})"
                     for _, p in hits.iterrows())


def _range(low: float, high: float) -> str:
    def one(v):
        return f"{v:.2f}" if round(v, 2) == v else f"{v:.3f}"
    return one(low) if low == high else f"{one(low)}–{one(high)}"


def overview(result: Audit) -> pd.DataFrame:
    """Return the headline the page and the command line both show: one row per measure with
    measure, ours, ours_lo, ours_hi (95% interval), n, subjects, the interval's method, the
    published figure beside it and a note (why a value is missing, or a caveat on its interval)."""
    pub = published_figures()
    out = []
    for row in headline_rows(result):
        e = row.estimate
        kind = am.DEFINITIONS.get(row.name).kind if row.name in am.DEFINITIONS else "proportion"
        method = "Clopper-Pearson (effective n)" if kind == "proportion" else "cluster bootstrap"
        out.append({"measure": row.label, "ours": e.value, "ours_lo": e.ci_low, "ours_hi": e.ci_high, "n": e.n,
                    "subjects": e.subjects, "interval": method if math.isfinite(e.ci_low) else "",
                    "published": _published(row.published, pub), "note": e.reason or ""})
    return pd.DataFrame(out)


def context_figures() -> str:
    """Return the published figures that have no measure of ours to compare with (ICCs), as one line."""
    pub = published_figures()
    rest = pub[pub["compares_with"].isna()]
    return "; ".join(f"{p['scale']} {p['statistic']} {_range(p['low'], p['high'])} ({p['source']})"
                     for _, p in rest.iterrows())


# --------------------------------------------------------------------------------------------
# The methods paragraph


def _say(e: Estimate) -> str:
    """'0.812 (95% CI 0.701–0.893)', or why there is no value."""
    if not math.isfinite(e.value):
        return f"not computable ({e.reason or 'no data'})"
    ci = interval(e)
    return fmt(e.value) + (f" (95% CI {ci})" if ci else "")


def software_versions() -> str:
    """This software's version and the libraries' behind the numbers."""
    import scipy
    import statsmodels

    from labeling.version import software_version

    return (f"FNP TripleCheck {software_version()}; Python {platform.python_version()}, NumPy {np.__version__}, "
            f"pandas {pd.__version__}, SciPy {scipy.__version__}, statsmodels {statsmodels.__version__}")


def methods_paragraph(result: Audit, *, split: str | None = None, software: str | None = None) -> str:
    """Return a paragraph for a manuscript's methods and results: design, readers, images and
    subjects, each headline measure with its interval, the intervals' methods and resampling unit,
    and the software versions. Its numbers are headline_rows' estimates printed with fmt."""
    r, s = result.reads, result.settings
    by_name = {row.name: row for row in headline_rows(result)}
    est = {name: row.estimate for name, row in by_name.items() if name != "model_accuracy"}
    level = f"{100 * float(s.get('confidence', 0.95)):g}%"
    parts = []
    if result.synthetic:
        parts.append(f"SYNTHETIC DATA: {result.n_synthetic_images} of the images are synthetic demo faces, "
                     "not patients; these figures describe the software, not a study.")
    if not r.n_images:
        parts.append("Design. No image has been read yet: there is nothing to report.")
        parts.append(f"Software: {software or software_versions()}.")
        return " ".join(parts)
    reads_per_image = r.n_reads / r.n_images
    parts.append(
        f"Design. {r.n_images} facial photographs of {_subjects(result)} were graded into seven classes (N, no "
        "palsy; L1–L3 and R1–R3, left or right palsy of mild, moderate or severe degree) by "
        f"{r.n_readers} reader{'s' if r.n_readers != 1 else ''} reading blind to one another (the triple-check "
        "protocol: two independent reads, a landmark-asymmetry cross-check, adjudication of disagreements). "
        f"There were {r.n_reads} effective reads ({reads_per_image:.1f} per image); {r.n_double_read} images had "
        f"two or more graded reads, on {r.n_subjects} subjects, and agreement is computed on these"
        + (f" ({r.n_cannot_grade} cannot-grade reads left out)" if r.n_cannot_grade else "") + ".")
    parts.append(
        f"Agreement. Exact agreement was {_say(est['percent_agreement'])}, side agreement "
        f"{_say(est['side_agreement'])} and degree agreement {_say(est['degree_agreement'])}; the left/right swap "
        f"rate (images on which one read named the left side and another the right) was {_say(est['lr_swap_rate'])}. "
        f"Cohen's kappa between the first and second read was {_say(est['cohen_kappa'])}; weighted kappa on the "
        "ordinal scale L3 < L2 < L1 < N < R1 < R2 < R3 was "
        f"{_say(est['kappa_linear'])} with linear and {_say(est['kappa_quadratic'])} with quadratic weights, on "
        f"degree alone (side ignored) {_say(est['kappa_degree_linear'])} (linear) and "
        f"{_say(est['kappa_degree_quadratic'])} (quadratic), and with laterality-aware weights (|degree "
        f"difference|/3 within a side, 1 between sides) {_say(est['kappa_laterality'])}. Over all reads of an "
        f"image, Gwet's AC1 was {_say(est['gwet_ac1'])} and AC2 (quadratic weights) {_say(est['gwet_ac2'])}, "
        f"Fleiss' kappa {_say(est['fleiss_kappa'])} (nominal) and {_say(est['fleiss_kappa_quadratic'])} (quadratic "
        f"weights), and Krippendorff's alpha {_say(est['krippendorff_alpha'])} (nominal) and "
        f"{_say(est['krippendorff_alpha_ordinal'])} (ordinal).")
    checks = []
    if by_name["check1"].label.endswith("= exact agreement on these data"):
        checks.append("The check-1 consensus rate is the exact agreement on these data (no cannot-grade read, all "
                      "reads in).")
    elif math.isfinite(est["check1"].value):
        checks.append(f"The check-1 consensus rate (an image with a cannot-grade read counts as a disagreement) was "
                      f"{_say(est['check1'])}.")
    if math.isfinite(est["check2"].value):
        checks.append(f"Check 2 accepted the consensus class of {_say(est['check2'])} of the images it tested.")
    parts += checks
    if "asymmetry_accuracy" in est:
        parts.append(f"The landmark-asymmetry range classifier agreed with the final label on "
                     f"{_say(est['asymmetry_accuracy'])} of {est['asymmetry_accuracy'].n} measured images.")
    if result.models:
        runs = "; ".join(f"run {c.name}{' (' + c.meta['arch'] + ')' if c.meta.get('arch') else ''} "
                         f"{_say(c.agreement)} on {c.n} images of {c.n_subjects} subjects, Cohen's kappa "
                         f"{_say(c.cohen_kappa)}" for c in result.models)
        parts.append(f"Models. Accuracy against the final labels{f' on the {split} split' if split else ''}: {runs}. "
                     "Each imported run is reported; none was selected on these figures.")
    boot = int(s.get("n_boot", 0))
    intervals = (f"Statistics. Intervals are {level} and treat the subject as the independent unit "
                 f"(resampling unit: {s.get('resampling_unit', 'subject')}). Proportions: {PROPORTION_METHOD}. "
                 f"Chance-corrected coefficients: {BOOTSTRAP_METHOD}, {boot} resamples, seed {s.get('seed')}; where "
                 "every resample agreed perfectly, the lower limit is the coefficient at the exact agreement's "
                 "lower limit with chance agreement held at its observed value. Chance agreement for Gwet's "
                 f"coefficients counts all {am.K} categories.") if boot > 0 else \
        "Statistics. No intervals were computed (0 bootstrap resamples)."
    parts.append(intervals)
    parts.append(f"Software: {software or software_versions()}.")
    return " ".join(parts)


def _subjects(result: Audit) -> str:
    unit = result.settings.get("resampling_unit", "subject")
    n = int(result.settings.get("subjects", result.reads.n_subjects))
    if unit == "subject":
        return f"{n} subjects"
    return f"{n} subjects or images ({unit})"
