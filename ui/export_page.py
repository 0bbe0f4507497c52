"""Export (coordinators): write a new dataset folder for the trainer, and review or correct crops first."""
from __future__ import annotations

import streamlit as st

from labeling.vocabulary import CLASSES
from labeling.export.splits import SPLITS, missing_from_splits, missing_sentence, present_classes, subjects_per_class
from labeling.export.dataset import (ExportError, export_dataset, export_plan, list_exports, readiness,
                                     seeds_for_every_class)
from labeling.export.crops import correct_crop, crop_preview, review_candidates
from labeling.export.download import export_zip, finished_export
from labeling.accounts.permissions import PermissionDenied
from labeling.words import join_words, plural, with_headers
from ui.common import database, guard, project
from ui.landmark_editor import landmark_editor
from ui.nav import link
from ui.web import export_download_url
from ui.words import table, zone_note

SEEDS_TRIED = 20


def _export_form(user, db) -> None:
    r = readiness(db)
    cols = st.columns(3)
    cols[0].metric("With a final label", f"{r['final']:,}")
    cols[1].metric("Excluded", f"{r['excluded']:,}")
    cols[2].metric("Unfinished", f"{r['unfinished']:,}")
    with st.container(border=True):
        name = st.text_input("Export name (a new folder under the exports folder)", placeholder="e.g. 2026-02-fnp-v1",
                             key="export_name", help="Letters, digits, '.', '_' and '-'. An existing name is "
                                                     "refused: exports are never overwritten.")
        seed = st.number_input("Seed of the split and folds", min_value=0, max_value=2**31 - 1, step=1,
                               key="export_seed", help="The same data and seed give the same split. Another seed "
                                                       "places the subjects differently.")
        every = st.checkbox("Put every class into train", key="export_every_class",
                            help="Before splitting, pins one subject of each class that train would otherwise lack "
                                 "to train. With few subjects per class, this is how a model gets to see every "
                                 "class; val and test then hold fewer classes.")
        go = st.button("Export", type="primary", key="export_go")
    if not go:
        return
    bar = st.progress(0.0, text="Preparing…")

    def progress(done, total, what):
        bar.progress(min(done / max(total, 1), 1.0), text=f"{what.capitalize()}: {done} of {total}")

    try:
        res = export_dataset(db, project().store, name, seed=int(seed), actor=user, progress=progress,
                             every_class_in_train=bool(every))
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
    st.session_state["export_done"] = res


def _missing_warning(missing: dict[str, list[str]], present: list[str], seed: int) -> None:
    """Warn when a split lacks a class of the export; missing from train is the serious case."""
    if not missing:
        return
    text = f"With seed {seed}, {missing_sentence(missing, present)}."
    if "train" in missing:
        st.warning(f"**A class is missing from train.** {text} A model trained on this export never sees "
                   f"{join_words(missing['train'], 'or')}. The data card says so too. *Will every class be in "
                   "train?* below tries other seeds; **Put every class into train** makes sure of it.",
                   icon=":material/warning:")
    else:
        st.info(f"{text} Those classes can still be learned, but not checked on that split.")


def _split_check(db) -> None:
    """Check a seed's split before writing anything, and find seeds that put every class into train."""
    st.subheader("Will every class be in train?")
    st.caption("Subjects are never divided between splits, so with few subjects a class can end up outside train. "
               "These checks place the subjects as an export would (nothing is written).")
    seed = int(st.session_state.get("export_seed", 0))
    every = bool(st.session_state.get("export_every_class", False))
    c = st.columns(2)
    if c[0].button(f"Check the split of seed {seed}" + (" (every class in train)" if every else ""),
                   key="export_check_seed"):
        st.session_state["export_check"] = _checked(db, lambda plan: (seed, plan.frame.assign(
            split=plan.split(seed, every))))
    if c[1].button(f"Try seeds {seed + 1} to {seed + SEEDS_TRIED}", key="export_try_seeds",
                   help="Lists which seeds put every class of the export into train."):
        st.session_state["export_seeds"] = _checked(db, lambda plan: (
            seeds_for_every_class(plan, seed + 1, SEEDS_TRIED), subjects_per_class(plan.frame)))
    checked = st.session_state.get("export_check")
    if checked:
        seed_checked, frame = checked
        counts = frame.groupby(["label", "split"]).size().unstack(fill_value=0)
        counts = counts.reindex(index=[k for k in CLASSES if k in counts.index],
                                columns=[k for k in SPLITS if k in counts.columns])
        st.dataframe(counts.rename_axis(index="class", columns="split"), width="stretch")
        missing = missing_from_splits(frame)
        if missing:
            _missing_warning(missing, present_classes(frame), seed_checked)
        else:
            st.success(f"With seed {seed_checked}, every class of the export is in train, val and test.")
    found = st.session_state.get("export_seeds")
    if found:
        _seed_table(*found)


def _checked(db, compute):
    """Run `compute(export_plan(db))`, or say why there is nothing to place; return its value or None."""
    try:
        return compute(export_plan(db))
    except ExportError as exc:
        st.error(str(exc))
        return None


def _seed_table(table, held: dict[str, int]) -> None:
    good = table.loc[table["every_class_in_train"], "seed"].tolist()
    if good:
        st.success(f"{plural(len(good), 'seed')} of {table.seed.min()} to {table.seed.max()} put every class into "
                   f"train: {join_words(good[:10])}{' …' if len(good) > 10 else ''}. Export under a new name with one "
                   "of them.")
        st.button(f"Use seed {good[0]}", key="export_use_seed", on_click=_use_seed, args=(int(good[0]),))
    else:
        lacking = {c for text in table["missing_train"] for c in text.split(", ") if c in held}
        few = [f"{c} is in the images of {plural(held[c], 'subject')}" for c in held if c in lacking]
        st.warning(f"None of seeds {table.seed.min()} to {table.seed.max()} puts every class into train. "
                   + (f"{join_words(few)}: " if few else "")
                   + "a class held by few subjects cannot be in every split. Tick **Put every class into train** "
                     "above, or export once more subjects have those classes.")
    shown = table.assign(every_class_in_train=table["every_class_in_train"].map({True: "yes", False: "no"}))
    st.dataframe(with_headers(shown), hide_index=True, width="stretch")


def _use_seed(seed: int) -> None:
    st.session_state["export_seed"] = seed
    st.session_state.pop("export_check", None)


def _download(name: str, where: str) -> None:
    """A link that downloads the finished export `name` as one zip (served by ui/web.py's route)."""
    try:
        size = export_zip(finished_export(project().store, name)).size
    except (ExportError, OSError) as exc:
        st.error(f"The export {name} cannot be offered for download: {exc}")
        return
    link(f"Download {name}.zip ({size / 1e6:,.1f} MB)", export_download_url(name), key=f"download_{where}_{name}",
         primary=True)
    st.caption("The zip holds the export folder as it is: the crops, manifest.csv, datacard.md and SHA256SUMS "
               "(check it after unpacking with `sha256sum -c SHA256SUMS`).")


def _last_export() -> None:
    """What the export just written holds, its download, and any class a split lacks."""
    res = st.session_state.get("export_done")
    if res is None:
        return
    st.subheader(f"Export {res.name}")
    (st.warning if res.synthetic else st.success)(res.summary())
    st.write(f"Folder on the server: `{res.path}`")
    _download(res.name, "new")
    st.dataframe(res.counts.rename_axis(index="class"), width="stretch")
    _missing_warning(res.missing, present_classes(res.manifest), res.seed)
    with st.expander("Data card (datacard.md)", expanded=False):
        st.markdown(res.datacard)


def _exports_list() -> None:
    done = list_exports(project().store)
    if done.empty:
        return
    st.subheader("Exports")
    shown = done.assign(synthetic=done["synthetic"].map({True: "yes", False: "no"}))
    table(shown, times=["created"])
    st.caption(zone_note())
    name = st.selectbox("Download an export", done["name"].tolist(), key="export_download_pick")
    if name:
        _download(name, "list")


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
    prev = crop_preview(db, project().store, int(image_id))
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
             "`NAME/{train,val,test}/{N,L1,…,R3}/`, with `manifest.csv` and `datacard.md`, and offers it as one zip "
             "download: split 7:2:1 by subject, each class as close to 7:2:1 as whole subjects allow, 10 "
             "cross-validation folds, blurry or distant images in train only, subject codes hashed, no "
             "original file names or metadata. See `docs/export.md`.")
    _export_form(user, db)
    _last_export()
    _split_check(db)
    _exports_list()
    _crop_review(user, db)
