"""Export (coordinators): write a new dataset folder for the trainer, and review or correct crops first."""
from __future__ import annotations

import streamlit as st

from db.access import data_dir
from labeling.export import ExportError, crop_preview, correct_crop, export_dataset, list_exports, readiness, \
    review_candidates
from labeling.permissions import PermissionDenied
from ui.common import database, guard
from ui.landmark_editor import landmark_editor


def _export_form(user, db) -> None:
    r = readiness(db)
    cols = st.columns(3)
    cols[0].metric("With a final label", f"{r['final']:,}")
    cols[1].metric("Excluded", f"{r['excluded']:,}")
    cols[2].metric("Unfinished", f"{r['unfinished']:,}")
    with st.form("export"):
        name = st.text_input("Export name (a new folder under the exports folder)", placeholder="e.g. 2026-02-fnp-v1",
                             help="Letters, digits, '.', '_' and '-'. An existing name is refused: exports are never "
                                  "overwritten.")
        seed = st.number_input("Seed of the split and folds", min_value=0, max_value=2**31 - 1, value=0, step=1)
        go = st.form_submit_button("Export", type="primary")
    if not go:
        return
    bar = st.progress(0.0, text="Preparing…")

    def progress(done, total, what):
        bar.progress(min(done / max(total, 1), 1.0), text=f"{what.capitalize()}: {done} of {total}")

    try:
        res = export_dataset(db, data_dir(), name, seed=int(seed), actor=user, progress=progress)
    except (ExportError, PermissionDenied) as exc:
        bar.empty()
        st.error(str(exc))
        return
    except OSError as exc:
        bar.empty()
        st.error(f"The export could not be written ({exc.strerror or exc}); nothing was left behind. "
                 "Check the free disk space and try again.")
        return
    bar.empty()
    (st.warning if res.synthetic else st.success)(res.summary())
    st.write(f"Folder: `{res.path}`")
    st.dataframe(res.counts)
    with st.expander("Data card (datacard.md)", expanded=False):
        st.markdown(res.datacard)


def _crop_review(user, db) -> None:
    st.subheader("Crop review")
    st.write("Every exported crop is a square box around the landmarks, widened per movement. Where a box is wrong, "
             "give a better one in pixels of the original photo; the box is stored (never the pixels), the latest "
             "correction wins, and the next export uses it.")
    if st.session_state.get("crop_flash"):
        st.success(st.session_state.pop("crop_flash"))
    cands = review_candidates(db)
    if cands.empty:
        st.info("No image has a final label yet.")
        return
    labels = {r.image_id: f"image {r.image_id} · {r.movement} · {r.label} · crop: {r.crop}" for r in cands.itertuples()}
    image_id = st.selectbox("Image", list(labels), format_func=labels.get, key="crop_image")
    prev = crop_preview(db, data_dir(), int(image_id))
    w, h = prev.size
    box = prev.box.box or (0.0, 0.0, float(min(w, h)), float(min(w, h)))
    cols = st.columns(2)
    if prev.overlay is not None:
        cols[0].image(prev.overlay, caption=f"photo {w}x{h}, box in yellow", width="stretch")
    if prev.crop is not None:
        flip = "; flipped, as the photo is mirrored" if prev.mirrored else ""
        cols[1].image(prev.crop, caption=f"exported crop 299x299 (box from {prev.box.source}{flip})", width=299)
    else:
        cols[1].warning(f"No crop: {prev.message}. Give a box below to include this image in exports.")
    with st.form(f"crop_fix_{image_id}"):
        c = st.columns(4)
        vals = [c[i].number_input(k, value=float(round(v, 1)), step=1.0, format="%.1f")
                for i, (k, v) in enumerate(zip(("x0", "y0", "x1", "y1"), box))]
        reason = st.text_input("Reason for the correction")
        save = st.form_submit_button("Save corrected box")
    with st.expander("Correct the landmarks (the crop box follows them)"):
        landmark_editor(db, user, int(image_id), key="crop")
    if save:
        try:
            stored = correct_crop(db, user, int(image_id), vals, reason)
        except (ExportError, PermissionDenied) as exc:
            st.error(str(exc))
        else:
            st.session_state["crop_flash"] = (f"Crop box of image {image_id} saved as "
                                              f"({', '.join(f'{v:.1f}' for v in stored)}).")
            st.rerun()


def export_page() -> None:
    user = guard("export")
    db = database()
    st.title("Export a dataset")
    st.write("Writes the images with a final label as 299x299 face crops in a new folder "
             "`NAME/{train,val,test}/{N,L1,…,R3}/`, with `manifest.csv` and `datacard.md`: split 7:2:1 by subject and "
             "class, 10 cross-validation folds, blurry or distant images in train only, subject codes hashed, no "
             "original file names or metadata. See `docs/export.md`.")
    _export_form(user, db)
    done = list_exports(data_dir())
    if not done.empty:
        st.subheader("Exports")
        st.dataframe(done, hide_index=True)
    _crop_review(user, db)
