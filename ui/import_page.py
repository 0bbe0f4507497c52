"""Import (coordinators): upload photos or a zip plus the manifest; see the per-file report."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from labeling.csvsafe import to_csv_bytes
from labeling.intake.importer import import_uploaded, read_zip
from labeling.intake.manifest import OPTIONAL, REQUIRED, ManifestError
from labeling.accounts.permissions import require
from labeling.workflow.status import import_history, import_issues
from labeling.words import with_headers
from ui.common import database, guard, project
from ui.words import table, zone_note


def _report_frame(rows: list[dict]) -> pd.DataFrame:
    order = {"error": 0, "warning": 1, "info": 2}
    df = pd.DataFrame(rows, columns=["severity", "file", "row", "reason"])
    df["row"] = df["row"].astype("Int64")  # a row number, or empty for a file or the whole manifest (not 3.0)
    df = df.sort_values("severity", key=lambda s: s.map(order), kind="stable")
    return df.rename(columns={"row": "manifest row", "reason": "what happened"})


def import_page() -> None:
    user = guard("import")
    db = database()
    st.title("Import photos")
    st.write(f"A manifest CSV with the columns **{', '.join(REQUIRED)}** and optionally *{', '.join(OPTIONAL)}*, "
             "plus the photos (or one zip of them). Photos are stored unchanged, identified by their SHA-256; "
             "importing the same photos again adds nothing. See `docs/data-import.md`.")
    with st.form("import", clear_on_submit=True):
        manifest = st.file_uploader("Manifest (CSV)", type=["csv", "txt"])
        photos = st.file_uploader("Photos, or one .zip of them", accept_multiple_files=True)
        go = st.form_submit_button("Import", type="primary")
    if go:
        require(user, "import")
        if manifest is None or not photos:
            st.error("Choose a manifest and at least one photo or zip.")
        else:
            files: dict[str, bytes] = {}
            issues = []
            for f in photos:
                data = f.getvalue()
                if f.name.lower().endswith(".zip"):
                    got, zip_issues = read_zip(data)
                    files.update(got)
                    issues += zip_issues
                else:
                    files[f.name] = data
            bar = st.progress(0.0, text="Importing…")
            try:
                report = import_uploaded(db, project().store, manifest.getvalue(), manifest.name, files, issues=issues,
                                         actor=user,
                                         progress=lambda d, t, _: bar.progress(d / max(t, 1), text=f"Importing {d} of {t}"))
            except ManifestError as exc:
                bar.empty()
                st.error(f"{exc}. Nothing was imported.")
            else:
                bar.empty()
                (st.warning if report.errors else st.success)(report.summary())
                st.session_state["last_import"] = report.import_id
    history = import_history(db)
    if history:
        st.subheader("Imports")
        table(pd.DataFrame(history), times=["started"])
        st.caption(zone_note())
        ids = [h["import"] for h in history]
        default = ids.index(st.session_state["last_import"]) if st.session_state.get("last_import") in ids else 0
        chosen = st.selectbox("Report of import", ids, index=default)
        rows = import_issues(db, chosen)
        if rows:
            df = _report_frame(rows)
            st.dataframe(with_headers(df), hide_index=True, width="stretch")
            st.download_button("Download this report (CSV)", to_csv_bytes(df),
                               file_name=f"import-{chosen}-report.csv", mime="text/csv", on_click="ignore")
        else:
            st.success("No problems reported for this import.")
