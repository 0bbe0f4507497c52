"""`python -m labeling ...`: a thin command line over the labeling package (no logic of its own)."""
from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys

from db.access import data_dir, image_store
from labeling.project import Project
from labeling.progress import progress_bar

EXIT_OK, EXIT_PARTIAL, EXIT_UNUSABLE = 0, 1, 2


def _actor(db, args):
    """Who this command acts as: the user named by --as-user (checked like a signed-in user), else
    the shell itself, recorded as `system:<command> (<os user>)` in the audit log."""
    from labeling.accounts.actors import SystemActor
    from labeling.accounts.users import get_user

    name = getattr(args, "as_user", None)
    if not name:
        return SystemActor.command_line(args.command)
    user = get_user(db, name)
    if user is None or not user.active:
        raise CommandError(f"no active user named {name!r}")
    return user


class CommandError(Exception):
    """A command cannot run as asked; the message says why (printed, exit 2)."""


def print_report(report, as_json: bool = False) -> None:
    """Print an import report: one line per issue, then the summary."""
    if as_json:
        print(json.dumps({"import_id": report.import_id, **report.counts(),
                          "issues": [i.__dict__ for i in report.issues]}, indent=2))
        return
    for i in report.issues:
        where = f"{i.file}" + (f" (row {i.row})" if i.row else "")
        print(f"{i.severity.upper():8} {where}: {i.reason}")
    print(report.summary())


def cmd_init(args) -> int:
    project = Project.open()
    db = project.db
    from db.migrations import applied

    print(f"data folder {project.folder} ready (schema {max(applied(db))})")
    return EXIT_OK


def cmd_import(args) -> int:
    from labeling.intake.importer import import_folder
    from labeling.intake.manifest import ManifestError

    if not os.path.isdir(args.images):
        print(f"error: images folder {args.images} does not exist", file=sys.stderr)
        return EXIT_UNUSABLE
    if not os.path.isfile(args.manifest):
        print(f"error: manifest {args.manifest} does not exist", file=sys.stderr)
        return EXIT_UNUSABLE
    project = Project.open()
    db = project.db
    try:
        report = import_folder(db, project.store, args.images, args.manifest, actor=_actor(db, args),
                               progress=None if args.json else progress_bar("importing"))
    except ManifestError as exc:
        print(f"error: {exc}. Nothing was imported.", file=sys.stderr)
        return EXIT_UNUSABLE
    print_report(report, args.json)
    return EXIT_PARTIAL if report.errors else EXIT_OK


def cmd_demo(args) -> int:
    from labeling.demo.project import load_demo

    project = Project.open()
    db = project.db
    actor = _actor(db, args)
    res = load_demo(db, project.store, subjects=args.subjects, seed=args.seed, simulate_readers=args.simulate_readers,
                    actor=actor, progress=progress_bar("demo"))
    print(f"SYNTHETIC demo: {res.report.summary()}; {res.simulated_reads} simulated read(s)")
    print(res.range_note)
    if args.final:
        from labeling.demo.project import carry_summary, carry_to_final

        done = carry_to_final(db, project.store, accuracy=args.simulate_readers if args.simulate_readers is not None else 0.9,
                              seed=args.seed, actor=actor, progress=progress_bar("carrying on"))
        print(carry_summary(done))
    return EXIT_OK if not res.report.errors else EXIT_PARTIAL


def cmd_demo_sheet(args) -> int:
    from labeling.vocabulary import CLASSES
    from labeling.demo.synthetic import contact_sheet

    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip())
    unknown = [c for c in classes if c not in CLASSES]
    if unknown or not classes:
        raise CommandError(f"--classes takes some of {', '.join(CLASSES)}; got {args.classes!r}")
    sheet = contact_sheet(classes, tile=args.tile, subject_seed=args.subject)
    sheet.quantize(256).save(args.out, optimize=True)
    print(f"SYNTHETIC contact sheet ({len(classes)} classes x 7 movements) written to {args.out}")
    return EXIT_OK


def cmd_export(args) -> int:
    from pathlib import Path

    from labeling.export.dataset import ExportError, export_dataset

    project = Project.open()
    db = project.db
    actor = _actor(db, args)
    try:
        res = export_dataset(db, project.store, args.name, seed=args.seed, out_dir=Path(args.out) if args.out else None,
                             actor=actor, progress=progress_bar("exporting"), workers=args.workers,
                             every_class_in_train=args.every_class_in_train)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    except OSError as exc:
        print(f"error: the export could not be written ({exc.strerror or exc}); nothing was left behind",
              file=sys.stderr)
        return EXIT_UNUSABLE
    print(res.summary())
    return EXIT_OK


def _new_password(name: str) -> str:
    return os.environ.get("FNP_PASSWORD") or getpass.getpass(f"password for {name}: ")


def cmd_users(args) -> int:
    from labeling.accounts import auth
    from labeling.accounts import sessions
    from labeling.accounts import users

    project = Project.open()
    db = project.db
    if args.action == "list":
        locked = set(auth.locked_names(db))
        for u in users.list_users(db):
            state = ("active" if u.active else "deactivated") + (", locked out" if u.name.lower() in locked else "")
            print(f"{u.name:24} {','.join(sorted(u.roles)):40} {state}")
        return EXIT_OK
    if not args.name:
        raise CommandError(f"users {args.action} needs a user NAME")
    actor = _actor(db, args)
    if args.action == "add":
        if not args.role:
            raise CommandError("users add needs at least one --role")
        user = users.add_user(db, args.name, _new_password(args.name), args.role, actor=actor)
        print(f"user {user.name} created with role(s) {', '.join(sorted(user.roles))}")
    elif args.action == "roles":
        if not args.role:
            raise CommandError("users roles needs the new roles: --role ROLE (repeatable)")
        user = users.set_roles(db, args.name, args.role, actor=actor)
        print(f"{user.name} now has role(s) {', '.join(sorted(user.roles))}")
    elif args.action in ("deactivate", "reactivate"):
        user = users.set_active(db, args.name, args.action == "reactivate", actor=actor)
        print(f"{user.name} {args.action}d" + ("" if user.active else "; every session of theirs ended"))
    elif args.action == "reset-password":
        ended = users.reset_password(db, args.name, _new_password(args.name), actor=actor)
        print(f"password of {args.name} reset; {ended} session(s) ended")
    elif args.action == "unlock":
        auth.unlock(db, args.name, actor=actor)
        print(f"{args.name} may sign in again at once")
    elif args.action == "sign-out":
        user = users.get_user(db, args.name)
        if user is None:
            raise CommandError(f"no user named {args.name!r}")
        from labeling.accounts.permissions import require

        require(actor, "users.manage")
        print(f"{sessions.end_all_sessions(db, user, f'signed out by {actor.name}')} session(s) of {user.name} ended")
    return EXIT_OK


def cmd_db(args) -> int:
    from db.access import database_url
    from db.copy import CopyError, copy_to_postgres

    if args.action == "where":
        url = database_url()
        print(f"PostgreSQL at {re.sub(r'//[^@/]*@', '//***@', url)}" if url else f"SQLite file in {data_dir()}")
        print(f"photos and exports in {image_store()}")
        return EXIT_OK
    if not args.to:
        raise CommandError("db copy needs --to postgresql://...")
    if database_url():
        raise CommandError("this project is on PostgreSQL already: unset FNP_DATABASE_URL to copy the SQLite file")
    try:
        report = copy_to_postgres(Project.open().db, args.to)
    except CopyError as exc:
        raise CommandError(str(exc)) from None
    for table, (rows, digest) in report.tables.items():
        print(f"{table:22} {rows:>10,}  sha256 {digest[:16]}")
    print(report.summary())
    print(f"next: set FNP_DATABASE_URL to that URL for every server; photos stay in {image_store()} "
          "(FNP_IMAGE_STORE)")
    return EXIT_OK


def cmd_settings(args) -> int:
    from labeling.workflow import settings

    project = Project.open()
    db = project.db
    if args.action == "list":
        for key, value in settings.all_settings(db).items():
            s = settings.SETTINGS[key]
            print(f"{key:22} {str(value):10} {s.label}{f' ({s.unit})' if s.unit else ''}")
        return EXIT_OK
    if not args.key or args.value is None:
        raise CommandError("settings set needs KEY and VALUE (settings list shows the keys)")
    print(settings.preview(db, args.key, args.value))
    if not args.yes:
        print("(nothing changed: add --yes to apply)")
        return EXIT_OK
    print(settings.change(db, args.key, args.value, _actor(db, args)))
    return EXIT_OK


def cmd_measure(args) -> int:
    from labeling.workflow.measuring import measure_pending
    from labeling.words import check2_sentence, measured_sentence, sentence
    from labeling.workflow.states import run_check2

    project = Project.open()
    db = project.db
    actor = _actor(db, args)
    counts = measure_pending(db, project.store, workers=args.workers, progress=progress_bar("measuring"), actor=actor)
    print(sentence(measured_sentence(counts)))
    print(sentence(check2_sentence(run_check2(db, actor))))
    return EXIT_OK


def cmd_ranges(args) -> int:
    from labeling.words import check2_sentence, sentence
    from labeling.workflow.states import learn_and_store_ranges, run_check2

    project = Project.open()
    db = project.db
    actor = _actor(db, args)
    table = learn_and_store_ranges(db, actor)
    print(f"range table {table.version} learned")
    print(sentence(check2_sentence(run_check2(db, actor))))
    return EXIT_OK


def _format_overview(table, context: str) -> str:
    """Return the audit's headline (agreement_report.overview) as fixed-width text."""
    from labeling.agreement.report import fmt

    width = max(len(m) for m in table["measure"]) if len(table) else 10
    lines = [f"{'measure':{width}}  {'ours':>6}  {'95% CI':17}  {'n':>7}  {'subjects':>8}  published (context)"]
    for _, r in table.iterrows():
        ci = "" if r["ours_lo"] != r["ours_lo"] else f"[{fmt(r['ours_lo'])}, {fmt(r['ours_hi'])}]"
        published = r["published"] or "—"
        lines.append(f"{r['measure']:{width}}  {fmt(r['ours']):>6}  {ci:17}  {int(r['n']):>7}  {int(r['subjects']):>8}  "
                     f"{published}")
        if r["note"]:
            lines.append(f"{'':{width}}  note: {r['note']}")
    lines.append(f"other published figures (not comparable one to one): {context}")
    return "\n".join(lines)


def cmd_agreement(args) -> int:
    from labeling.agreement.summary import report_csv
    from labeling.agreement.plots import report_html
    from labeling.agreement.report import context_figures, methods_paragraph, overview
    from labeling.agreement.data import load_audit_data

    project = Project.open()
    db = project.db
    data = load_audit_data(db, split=args.split)
    result = data.audit(n_boot=args.n_boot, seed=args.seed)
    methods = methods_paragraph(result, split=args.split if result.models else None)
    if args.report:
        folder = os.path.abspath(args.report)
        try:
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "agreement.csv"), "w", encoding="utf-8", newline="") as fh:
                fh.write(report_csv(result))
            with open(os.path.join(folder, "agreement.html"), "w", encoding="utf-8") as fh:
                fh.write(report_html(result, points=data.points, boxes=data.boxes, methods=methods))
        except OSError as exc:
            print(f"error: cannot write the report to {folder}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_UNUSABLE
    from labeling.workflow.reader_qc import describe, load_qc, reader_qc

    qc = reader_qc(load_qc(db))
    if args.json:
        qc_rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
                   for row in qc.to_dict(orient="records")]
        print(json.dumps({**result.to_dict(), "methods_paragraph": methods, "reader_qc": qc_rows}, indent=2))
    else:
        r = result.reads
        if result.synthetic:
            print(f"SYNTHETIC DATA: {result.n_synthetic_images} of the images read are synthetic demo faces, not patients")
        print(f"{r.n_images} image(s) of {result.settings['subjects']} subject(s) read, {r.n_double_read} read at least "
              f"twice, {r.n_reads} effective read(s) by {r.n_readers} reader(s); {len(data.finals)} final label(s); "
              f"{len(result.models)} model run(s) on the {args.split} split; range table {data.range_version or 'none yet'}")
        print(f"intervals: {result.settings['ci']}; {args.n_boot} resamples, seed {args.seed}; resampling unit "
              f"{result.settings['resampling_unit']}")
        print(_format_overview(overview(result), context_figures()))
        print()
        print("methods paragraph:")
        print(methods)
        if len(qc):
            print()
            print("reader quality control (mirror and gold items; subject-level 95% intervals):")
            for _, row in qc.iterrows():
                print(f"  {row.reader}: {describe(row)}")
    if args.report:
        print(f"report written: {os.path.join(folder, 'agreement.csv')}, {os.path.join(folder, 'agreement.html')}",
              file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK


def cmd_landmarks(args) -> int:
    from labeling.workflow.landmark_edits import corrected_images

    table = corrected_images(Project.open().db)
    if args.json:
        print(json.dumps({"corrected_images": int(len(table)), "images": table.to_dict("records")}, indent=2))
    elif table.empty:
        print("no image carries landmarks corrected by hand")
    else:
        print(f"{len(table)} image(s) carry landmarks corrected by hand:")
        for r in table.itertuples():
            print(f"  image {r.image_id}: {r.corrections} correction(s), last by {r.last_actor} at {r.last_at}; "
                  f"points moved: {', '.join(map(str, r.moved))}" + ("" if r.in_use else " (not measured yet)"))
    return EXIT_OK


def cmd_import_predictions(args) -> int:
    from labeling.agreement.data import PredictionImportError, import_predictions

    project = Project.open()
    db = project.db
    try:
        res = import_predictions(db, args.run, name=args.name, actor=_actor(db, args))
    except PredictionImportError as exc:
        print(f"error: {exc}. Nothing was imported.", file=sys.stderr)
        return EXIT_UNUSABLE
    print(res.message)
    return EXIT_OK


def build_parser(prog: str = "python -m labeling") -> argparse.ArgumentParser:
    """Return the argument parser for every subcommand (`prog`: how usage lines name the command)."""
    p = argparse.ArgumentParser(prog=prog, description="FNP TripleCheck labeling workflow "
                                "(research tool, not a diagnostic device). Data folder: $FNP_DATA_DIR or ./data.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create the data folder and apply database migrations").set_defaults(func=cmd_init)
    imp = sub.add_parser("import", help="import photos described by a manifest CSV")
    imp.add_argument("--images", required=True, help="folder holding the photos")
    imp.add_argument("--manifest", required=True, help="CSV: file, subject, movement, source[, mirrored, sex, age_group, cohort]")
    imp.add_argument("--json", action="store_true", help="print the report as JSON")
    imp.set_defaults(func=cmd_import)
    demo = sub.add_parser("demo", help="load SYNTHETIC demo subjects (astronaut-based faces)")
    demo.add_argument("--subjects", type=int, default=14, help="synthetic subjects, 7 photos each (default 14)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--simulate-readers", type=float, metavar="ACCURACY", default=None,
                      help="also give every image two simulated reads of this accuracy (0-1)")
    demo.add_argument("--final", action="store_true",
                      help="then carry the demo to final labels: simulated reads, measurement, ranges, check 2, "
                           "simulated adjudication (all marked synthetic/simulated)")
    demo.set_defaults(func=cmd_demo)
    sheet = sub.add_parser("demo-sheet", help="draw every movement of one SYNTHETIC subject for a few classes (PNG)")
    sheet.add_argument("--out", default="synthetic-movements.png", help="PNG file to write")
    sheet.add_argument("--classes", default="N,L2,R3", help="comma-separated classes, one row each (default N,L2,R3)")
    sheet.add_argument("--subject", type=int, default=3, help="the synthetic subject's seed (default 3)")
    sheet.add_argument("--tile", type=int, default=150, help="width of each photo in pixels (default 150)")
    sheet.set_defaults(func=cmd_demo_sheet)
    exp = sub.add_parser("export", help="export the images with a final label as a new dataset folder (docs/export.md)")
    exp.add_argument("--name", required=True, help="the export's folder name: letters, digits, '.', '_', '-'")
    exp.add_argument("--seed", type=int, default=0, help="seed of the split and folds (default 0)")
    exp.add_argument("--out", default=None, help="folder holding the exports (default: DATA/exports)")
    exp.add_argument("--workers", type=int, default=None, help="crop processes (default: one per core)")
    exp.add_argument("--every-class-in-train", action="store_true",
                     help="pin one subject of each class train would otherwise lack to train before splitting")
    exp.set_defaults(func=cmd_export)
    meas = sub.add_parser("measure", help="measure every image not yet measured (landmarks, indices, quality), then run check 2")
    meas.add_argument("--workers", type=int, default=None)
    meas.set_defaults(func=cmd_measure)
    rng = sub.add_parser("ranges", help="re-learn the check-2 range table from the check-1 consensus (a new version)")
    rng.set_defaults(func=cmd_ranges)
    agr = sub.add_parser("agreement", help="print the agreement audit (the Agreement page's numbers)")
    agr.add_argument("--json", action="store_true", help="print every number as JSON (agreement.summary and the "
                     "methods paragraph)")
    agr.add_argument("--report", metavar="DIR", help="also write DIR/agreement.csv and DIR/agreement.html")
    agr.add_argument("--split", default="test", help="which split of the imported model predictions to evaluate "
                     "(default test)")
    agr.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the CIs (default 1000, 0: none)")
    agr.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    agr.set_defaults(func=cmd_agreement)
    lmk = sub.add_parser("landmarks", help="list the images whose landmarks were corrected by hand")
    lmk.add_argument("--json", action="store_true", help="print them as JSON")
    lmk.set_defaults(func=cmd_landmarks)
    ipred = sub.add_parser("import-predictions", help="store a trainer run's predictions.csv (and config.json); "
                           "its subject_hash and source columns, when present, make the subject the unit of the "
                           "run's intervals")
    ipred.add_argument("--run", required=True, help="the trainer's run folder")
    ipred.add_argument("--name", default=None, help="run name (default: the folder's name)")
    ipred.set_defaults(func=cmd_import_predictions)
    users = sub.add_parser("users", help="manage accounts (passwords from $FNP_PASSWORD or a prompt)")
    users.add_argument("action", choices=["add", "list", "roles", "deactivate", "reactivate", "reset-password",
                                          "unlock", "sign-out"])
    users.add_argument("name", nargs="?")
    users.add_argument("--role", action="append", help="reader, adjudicator, coordinator, auditor or admin (repeatable)")
    users.set_defaults(func=cmd_users)
    sett = sub.add_parser("settings", help="list the project settings, or preview and change one")
    sett.add_argument("action", choices=["list", "set"])
    sett.add_argument("key", nargs="?")
    sett.add_argument("value", nargs="?")
    sett.add_argument("--yes", action="store_true", help="apply the change (without it: only say what it would do)")
    sett.set_defaults(func=cmd_settings)
    dbc = sub.add_parser("db", help="where the project's database is; copy an SQLite project to PostgreSQL")
    dbc.add_argument("action", choices=["where", "copy"])
    dbc.add_argument("--to", metavar="URL", help="copy: an empty PostgreSQL database, postgresql://user@host/name")
    dbc.set_defaults(func=cmd_db)
    for command in (imp, demo, exp, meas, rng, ipred, users, sett):
        command.add_argument("--as-user", metavar="NAME", help="act as this user (their roles are checked); default: "
                             "the shell itself, recorded as system:<command> (<os user>) in the audit log")
    return p


def main(argv: list[str] | None = None, prog: str = "python -m labeling") -> int:
    """Run the command line; return the exit code."""
    from labeling.accounts.permissions import PermissionDenied
    from labeling.workflow.settings import SettingError
    from labeling.accounts.users import UserError

    args = build_parser(prog).parse_args(argv)
    try:
        return args.func(args)
    except (CommandError, PermissionDenied, UserError, SettingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        print("interrupted; run the same command again to finish", file=sys.stderr)
        return 130
