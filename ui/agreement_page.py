"""Agreement page (auditors, coordinators, admins; issues 5 and 15): reader agreement with
subject-level intervals beside the published figures, a methods paragraph to paste, breakdowns,
confusion matrices, plots, every model run on its own, and the report.

Everything is computed once per data change: the audit is cached on audit_data.data_version, a
one-query fingerprint, so reruns (switching a tab, picking a matrix) only draw. While readers keep
reading, the page stays on the data state it opened with and offers to update, rather than
recomputing (seconds at 100,000 images) on every click. Measures and methods: docs/agreement.md.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from labeling.vocabulary import MOVEMENTS
from labeling.agreement.summary import Audit, Comparison, report_csv
from labeling.agreement.plots import (agreement_over_time_figure, asymmetry_scatter, confusion_heatmap,
                                      label_distribution_figure, reading_time_figure, report_html, with_intervals)
from labeling.agreement.report import context_figures, fmt, methods_paragraph, overview
from labeling.agreement.data import data_version, list_runs, load_audit_data, prediction_splits
from labeling.words import with_headers
from ui.common import NOTICE, database, guard, project, report_error
from ui.qc_section import reader_qc_tab
from ui.words import table, when

log = logging.getLogger("fnp")
TABS = ("Breakdowns", "Confusion matrices", "Over time", "Readers", "Reader quality control", "Asymmetry",
        "Model vs neurologists", "Downloads")
BOOT_CHOICES = (0, 200, 1000, 2000)


@dataclass(frozen=True)
class Computed:
    """What the page shows for one data state: the audit and the small frames beside it (the reads
    themselves are not kept: the cache copies its values on every rerun)."""
    audit: Audit
    points: pd.DataFrame
    boxes: pd.DataFrame
    runs: pd.DataFrame
    version: tuple
    computed_at: str
    range_version: str | None
    n_finals: int
    n_synthetic_reads: int
    methods: str


@st.cache_data(max_entries=4, show_spinner="Computing the agreement audit (once per data change)…")
def _compute(folder: str, version: tuple, split: str | None, n_boot: int) -> Computed:
    """The audit of the data state `version` (the arguments are the cache key)."""
    db = database()
    loaded = data_version(db)  # what is actually loaded, should the key's state be gone by now
    data = load_audit_data(db, split)
    synthetic = data.reads["synthetic"].fillna(0).astype(int).sum() if len(data.reads) else 0
    audit = data.audit(n_boot=n_boot)
    return Computed(audit, data.points, data.boxes, list_runs(db), loaded, dt.datetime.now(dt.timezone.utc).isoformat(),
                    data.range_version, len(data.finals), int(synthetic),
                    methods_paragraph(audit, split=split if audit.models else None))


@st.cache_data(max_entries=4, show_spinner=False)
def _splits(folder: str, version: tuple) -> list[str]:
    return prediction_splits(database())


@st.cache_data(max_entries=2, show_spinner=False)
def _csv(folder: str, version: tuple, split: str | None, n_boot: int) -> str:
    return report_csv(_compute(folder, version, split, n_boot).audit)


@st.cache_data(max_entries=2, show_spinner=False)
def _html(folder: str, version: tuple, split: str | None, n_boot: int) -> str:
    c = _compute(folder, version, split, n_boot)
    return report_html(c.audit, points=c.points, boxes=c.boxes, methods=c.methods)


def _deferred(build, *key):
    """A download callable (run when the button is clicked): the report, or one line saying it failed."""
    def data() -> str:
        try:
            return build(*key)
        except Exception:  # never a traceback in a download either; the log has it
            log.exception("agreement report failed")
            return "The report could not be built; the server log has the details."
    return data


def _table(frame: pd.DataFrame, **kw) -> None:
    """Show a results table with each x, x_lo, x_hi folded into 'x [lo, hi]'."""
    if frame is None or not len(frame):
        st.caption("Nothing to show yet.")
        return
    st.dataframe(with_headers(with_intervals(frame)), hide_index=True, width="stretch", **kw)


def _headline(c: Computed) -> None:
    a = c.audit
    r = a.reads
    cols = st.columns(6)
    cols[0].metric("Images read", f"{r.n_images:,}")
    cols[1].metric("Read at least twice", f"{r.n_double_read:,}")
    cols[2].metric("Effective reads", f"{r.n_reads:,}")
    cols[3].metric("Readers", r.n_readers)
    cols[4].metric("Final labels", f"{c.n_finals:,}")
    cols[5].metric("Model runs", len(a.models))
    # One number per name: the check-1 rate is in the table below, where it says when it is the
    # exact agreement again.
    main = (("Exact agreement", r.percent_agreement), ("Cohen's kappa", r.cohen_kappa), ("Gwet's AC1", r.gwet_ac1),
            ("L/R swap rate", r.lr_swap_rate), ("Check-2 acceptance", a.checks.check2))
    for col, (name, e) in zip(st.columns(len(main)), main):
        ci = "" if pd.isna(e.ci_low) else f"95% CI {fmt(e.ci_low)}–{fmt(e.ci_high)}, "
        col.metric(name, fmt(e.value), help=f"{ci}n = {e.n}, {e.subjects} subjects"
                   + (f". {e.reason}" if e.reason else ""))
    st.subheader("Ours beside the published figures")
    _table(overview(a))
    st.caption(f"Intervals: 95%, the subject as the unit ({a.settings.get('resampling_unit')}): proportions by "
               "Clopper–Pearson on the effective sample size, coefficients by a cluster bootstrap of "
               f"{a.settings.get('n_boot')} resamples of subjects. Ordinal scale L3 < L2 < L1 < N < R1 < R2 < R3. "
               "Published figures are context, not targets: House–Brackmann grades six levels of global "
               "function, not our seven side-and-degree classes. Other figures: " + context_figures() + ".")
    with st.expander("Methods paragraph (to paste into a manuscript)"):
        st.code(c.methods, language=None, wrap_lines=True)


def _breakdowns(a: Audit) -> None:
    st.subheader("Per class")
    st.caption("Specific agreement: of the reads giving a class on double-read images, the share whose "
               "partner reads agree; and the one-vs-rest Cohen's kappa.")
    _table(a.per_class)
    st.subheader("Per movement")
    _table(a.per_movement)
    st.subheader("Per reader pair")
    st.caption("A reader paired with themself is intra-reader agreement (first read in rows). "
               "L/R swap rate: images on which one read named the left side and the other the right.")
    _table(a.comparison_table(a.reader_pairs))
    st.subheader("Per source")
    _table(a.per_source)
    st.subheader("Synthetic and real")
    _table(a.per_synthetic)


def _pick(label: str, comparisons: list[Comparison], key: str) -> Comparison | None:
    if not comparisons:
        return None
    names = [c.name for c in comparisons]
    name = st.selectbox(label, names, key=key)
    return comparisons[names.index(name)] if name in names else comparisons[0]


def _confusions(a: Audit) -> None:
    kinds = {"Reader vs reader": a.reader_pairs, "Each reader vs final": a.readers_vs_final,
             "Range class vs final": a.asymmetry}
    kind = st.radio("Matrix", list(kinds), horizontal=True, key="agreement_matrix_kind")
    chosen = _pick("Which", kinds[kind], "agreement_matrix_which")
    if chosen is None:
        st.info({"Reader vs reader": "No two readers have read the same image yet.",
                 "Each reader vs final": "No image has a final label yet.",
                 "Range class vs final": "No range table yet, or no measured image has a final label."}[kind])
        return
    normalise = st.toggle("Normalise each row", key="agreement_matrix_norm")
    st.plotly_chart(confusion_heatmap(chosen.confusion, title=f"{kind}: {chosen.name} (n = {chosen.n})",
                                      normalise=normalise), width="stretch")
    if kind == "Each reader vs final":
        st.caption("Final labels are built partly from the same reads, so this overstates a reader's accuracy: "
                   "read it for bias, not validity.")
    _table(pd.DataFrame([chosen.row()]))


def _over_time(a: Audit) -> None:
    st.plotly_chart(agreement_over_time_figure(a.over_time), width="stretch")
    period = {"D": "day", "W": "week", "M": "month"}.get(str(a.settings.get("time_freq"))[:1], "period")
    st.caption(f"Per {period} in which an image got its second graded read (days up to 8 weeks of data, weeks "
               "up to 2 years, months beyond).")
    _table(a.over_time)


def _readers(a: Audit) -> None:
    st.plotly_chart(label_distribution_figure(a.label_distribution), width="stretch")
    st.plotly_chart(reading_time_figure(a.reading_times), width="stretch")
    st.subheader("Each reader against the final label")
    _table(a.comparison_table(a.readers_vs_final))


def _asymmetry(c: Computed) -> None:
    if not len(c.points):
        st.info("No measured face yet: run the measurement (`python -m labeling measure`).")
        return
    present = [mv for mv in MOVEMENTS if mv in set(c.points["movement"])]
    mv = st.selectbox("Movement", present, key="agreement_movement")
    boxes = c.boxes[c.boxes["movement"] == mv] if len(c.boxes) else None
    st.plotly_chart(asymmetry_scatter(c.points[c.points["movement"] == mv], boxes, movement=mv), width="stretch")
    st.caption(f"Points: every measured image, coloured by its final label. Boxes: range table "
               f"{c.range_version or '(none learned yet)'}; dashed boxes have too few images to classify.")
    st.caption("Accuracy below is **out-of-fold**: each image is classified by ranges learned from the consensus "
               "images of the other subjects only (10 subject-grouped folds), not by the stored table, which "
               "learned from these same images.")
    _table(c.audit.comparison_table(c.audit.asymmetry))


def _models(c: Computed, split: str | None) -> None:
    a = c.audit
    if not len(c.runs):
        st.info("No trainer run imported yet. After training: `python -m labeling import-predictions --run RUN`.")
        return
    st.caption(f"Predictions of the **{split}** split against the labels the trainer was given. Every run is "
               "reported on its own, in import order: picking the best run on the test split would bias its "
               "figure upwards.")
    st.subheader("Runs side by side (paper Table 9)")
    _table(a.runs_table)
    st.subheader("Per movement (paper Table 7)")
    st.caption("Accuracy per movement of each method beside the neurologists' double-read agreement.")
    st.dataframe(with_headers(a.movement_table), hide_index=True, width="stretch")
    run = _pick("Run", a.models, "agreement_run")
    if run is None:
        st.info(f"No run has predictions on the {split} split.")
    else:
        st.metric("Accuracy", fmt(run.agreement.value),
                  help=f"95% CI {fmt(run.agreement.ci_low)}–{fmt(run.agreement.ci_high)}, n = {run.n}, "
                       f"{run.n_subjects} subjects (resampling unit: {run.unit})")
        st.plotly_chart(confusion_heatmap(run.confusion, title=f"{run.name}: normalised by true class (Figure 4)",
                                          normalise=True), width="stretch")
        st.subheader("Precision and sensitivity per class (paper Tables 5–6)")
        st.dataframe(with_headers(run.per_class), hide_index=True, width="stretch")
    st.subheader("Imported runs")
    table(c.runs, times=["imported_at"])


def _downloads(key: tuple) -> None:
    st.write("Every table as one long CSV (table, row, column, value), and one self-contained HTML file with "
             "the headline, the methods paragraph, the tables and every figure (opens offline; marked SYNTHETIC "
             "when any image is).")
    st.download_button("Download the tables (CSV)", _deferred(_csv, *key), file_name="agreement.csv",
                       mime="text/csv", on_click="ignore", icon=":material/table:")
    st.download_button("Download the report (HTML)", _deferred(_html, *key), file_name="agreement.html",
                       mime="text/html", on_click="ignore", icon=":material/description:")


def _render() -> None:
    db = database()
    folder = str(project().folder)
    current = data_version(db)
    if "agreement_version" not in st.session_state:
        st.session_state["agreement_version"] = current
    version = st.session_state["agreement_version"]
    splits = _splits(folder, version)
    with st.expander("Options"):
        split = st.selectbox("Model predictions: split", splits, key="agreement_split") if splits else "test"
        n_boot = st.select_slider("Bootstrap resamples for the intervals (0: none)", BOOT_CHOICES, value=1000,
                                  key="agreement_n_boot")
        st.caption("A subject's photos are not independent: every interval treats the subject as the unit "
                   "(docs/agreement.md, Confidence intervals).")
    key = (folder, version, split, n_boot)
    c = _compute(*key)
    if c.version != current:
        left, right = st.columns([4, 1])
        left.info("New reads, decisions or measurements arrived since this audit was computed "
                  f"({when(c.computed_at)}).")
        if right.button("Update", icon=":material/refresh:", key="agreement_update"):
            st.session_state["agreement_version"] = current
            st.rerun()
    if c.audit.reads.n_reads == 0:
        st.info("No reads yet: agreement starts once images have been read twice.")
    if c.n_synthetic_reads:
        st.warning(f"{c.n_synthetic_reads:,} of the reads are of SYNTHETIC images (demo data, not patients); "
                   "see *Synthetic and real* under Breakdowns.")
    _headline(c)
    tabs = st.tabs(list(TABS), key="agreement_tab", on_change="rerun")
    draw = {"Breakdowns": lambda: _breakdowns(c.audit), "Confusion matrices": lambda: _confusions(c.audit),
            "Over time": lambda: _over_time(c.audit), "Readers": lambda: _readers(c.audit),
            "Reader quality control": reader_qc_tab,
            "Asymmetry": lambda: _asymmetry(c), "Model vs neurologists": lambda: _models(c, split),
            "Downloads": lambda: _downloads(key)}
    for name, tab in zip(TABS, tabs):
        if tab.open:
            with tab:
                draw[name]()


def agreement_page() -> None:
    guard("agreement.view")
    st.title("Agreement audit")
    st.caption(NOTICE + " Methods and definitions: docs/agreement.md.")
    try:
        _render()
    except Exception as exc:  # never a traceback: a message and a reference for the log
        report_error(exc)
