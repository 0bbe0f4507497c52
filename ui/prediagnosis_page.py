"""Prediagnosis page (auditors, coordinators, admins, adjudicators; paper §4): one subject's
per-movement final labels, and a chosen model run's predictions, combined into a regional report
naming the likely affected muscles, downloadable as Markdown. A research aid, not a diagnosis.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from labeling.agreement.data import data_version, list_runs, list_subjects, subject_labels, subject_predictions
from labeling.agreement.prediagnosis import prediagnose
from labeling.vocabulary import MOVEMENT_NAMES
from labeling.words import with_headers
from ui.common import NOTICE, database, guard, project, report_error

NO_RUN = "(no model run)"


@st.cache_data(max_entries=8, show_spinner=False)
def _project(folder: str, version: tuple) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Subjects and imported runs of the data state `version` (the arguments are the cache key)."""
    return list_subjects(database()), list_runs(database())


@st.cache_data(max_entries=64, show_spinner=False)
def _subject(folder: str, version: tuple, code: str, run: str | None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """One subject's labels per image and, with a run, its predictions."""
    db = database()
    return subject_labels(db, code), (subject_predictions(db, code, run) if run else None)


def _report(title: str, labels: pd.DataFrame, code: str, key: str) -> None:
    """Show the prediagnosis of `labels` (movement, label) and its Markdown download."""
    st.subheader(title)
    p = prediagnose(labels, subject=code)
    st.markdown(p.to_markdown())
    st.download_button("Download this report (Markdown)", p.to_markdown(), file_name=f"prediagnosis-{key}-{code}.md",
                       mime="text/markdown", key=f"download_{key}", on_click="ignore", icon=":material/download:")


def _render() -> None:
    key = (str(project().folder), data_version(database()))
    subjects, runs = _project(*key)
    if not len(subjects):
        st.info("No subjects yet: import photos (or load the synthetic demo) first.")
        return
    synthetic = dict(zip(subjects["code"], subjects["synthetic"].astype(bool)))
    n_images = dict(zip(subjects["code"], subjects["n_images"]))
    def describe(c: str) -> str:
        return f"{c} — {n_images[c]} image(s)" + (" — SYNTHETIC" if synthetic[c] else "")

    code = st.selectbox("Subject (pseudonymous code)", list(subjects["code"]), key="prediagnosis_subject",
                        format_func=describe)
    if synthetic.get(code):
        st.warning("This subject is SYNTHETIC (generated demo data, not a patient).")
    run = st.selectbox("Model run to compare (optional)", [NO_RUN, *runs["name"]], key="prediagnosis_run")

    labels, predictions = _subject(*key, code, None if run == NO_RUN else run)
    table = labels.assign(movement_name=labels["movement"].map(MOVEMENT_NAMES),
                          state=labels["state"].str.replace("_", " "))
    if predictions is not None:
        table = table.merge(predictions[["image_id", "predicted", "split"]], on="image_id", how="left")
    st.dataframe(with_headers(table), hide_index=True, width="stretch")

    finals = labels[labels["final_label"].notna()].rename(columns={"final_label": "label"})[["movement", "label"]]
    if len(finals) < len(labels):
        st.caption(f"{len(labels) - len(finals)} image(s) have no final label yet (still being read, checked or "
                   "adjudicated, or excluded); they are left out of the report.")
    columns = st.columns(2) if predictions is not None else [st.container()]
    with columns[0]:
        _report("From the final labels", finals, code, "final")
    if predictions is not None:
        with columns[1]:
            if len(predictions):
                predicted = predictions[["movement", "predicted"]].rename(columns={"predicted": "label"})
                _report(f"From run {run}'s predictions", predicted, code, "model")
                st.caption("One prediction per image: the test split first, then val. A prediction on an image "
                           "the model was trained on says little.")
            else:
                st.info(f"Run {run} has no prediction for this subject's images.")


def prediagnosis_page() -> None:
    guard("prediagnosis.view")
    st.title("Prediagnosis")
    st.caption(NOTICE + " The regional report combines per-movement labels with the muscles each movement "
               "tests (paper Table 2); it is a research aid, not a diagnosis.")
    try:
        _render()
    except Exception as exc:  # never a traceback: a message and a reference for the log
        report_error(exc)
