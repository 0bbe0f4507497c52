"""`python -m labeling ...`: a thin command line over the labeling package (no logic of its own)."""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from db.access import data_dir, open_project

EXIT_OK, EXIT_PARTIAL, EXIT_UNUSABLE = 0, 1, 2


def _progress_bar(desc: str):
    """Return a progress callback drawing a tqdm bar on stderr."""
    from tqdm import tqdm

    bar = {"bar": None}

    def update(done: int, total: int, what: str = "") -> None:
        if bar["bar"] is None or bar["bar"].total != total:
            if bar["bar"] is not None:
                bar["bar"].close()
            bar["bar"] = tqdm(total=total, desc=desc, unit="img", file=sys.stderr, leave=False)
        bar["bar"].n = done
        bar["bar"].refresh()
        if done >= total:
            bar["bar"].close()
            bar["bar"] = None

    return update


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
    db = open_project()
    from db.migrations import applied

    print(f"data folder {data_dir()} ready (schema {max(applied(db))})")
    return EXIT_OK


def cmd_import(args) -> int:
    from labeling.importer import import_folder
    from labeling.manifest import ManifestError

    if not os.path.isdir(args.images):
        print(f"error: images folder {args.images} does not exist", file=sys.stderr)
        return EXIT_UNUSABLE
    if not os.path.isfile(args.manifest):
        print(f"error: manifest {args.manifest} does not exist", file=sys.stderr)
        return EXIT_UNUSABLE
    db = open_project()
    try:
        report = import_folder(db, data_dir(), args.images, args.manifest, actor=args.actor,
                               progress=None if args.json else _progress_bar("importing"))
    except ManifestError as exc:
        print(f"error: {exc}. Nothing was imported.", file=sys.stderr)
        return EXIT_UNUSABLE
    print_report(report, args.json)
    return EXIT_PARTIAL if report.errors else EXIT_OK


def cmd_demo(args) -> int:
    from labeling.demo import load_demo

    db = open_project()
    res = load_demo(db, data_dir(), subjects=args.subjects, seed=args.seed, simulate_readers=args.simulate_readers,
                    actor=args.actor, progress=_progress_bar("demo"))
    print(f"SYNTHETIC demo: {res.report.summary()}; {res.simulated_reads} simulated read(s)")
    return EXIT_OK if not res.report.errors else EXIT_PARTIAL


def cmd_users(args) -> int:
    from labeling.users import UserError, add_user, list_users

    db = open_project()
    if args.action == "list":
        for u in list_users(db):
            print(f"{u.name:24} {','.join(sorted(u.roles)):40} {'active' if u.active else 'disabled'}")
        return EXIT_OK
    if not args.name or not args.role:
        print("error: users add needs NAME and at least one --role", file=sys.stderr)
        return EXIT_UNUSABLE
    password = os.environ.get("FNP_PASSWORD") or getpass.getpass(f"password for {args.name}: ")
    try:
        user = add_user(db, args.name, password, args.role, actor="cli")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    print(f"user {user.name} created with role(s) {', '.join(sorted(user.roles))}")
    return EXIT_OK


def cmd_measure(args) -> int:
    from asymmetry.measure import measure_pending
    from labeling.workflow import run_check2

    db = open_project()
    counts = measure_pending(db, data_dir(), workers=args.workers, progress=_progress_bar("measuring"))
    print("measured: " + (", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing new"))
    c2 = run_check2(db)
    print("check 2: " + (", ".join(f"{v} {k}" for k, v in sorted(c2.items())) or "nothing to check (no agreed images "
                                                                                 "or no range table yet)"))
    return EXIT_OK


def cmd_ranges(args) -> int:
    from labeling.users import get_user
    from labeling.workflow import learn_and_store_ranges, run_check2

    db = open_project()
    user = get_user(db, args.as_user)
    if user is None:
        print(f"error: no user named {args.as_user}", file=sys.stderr)
        return EXIT_UNUSABLE
    from labeling.permissions import PermissionDenied

    try:
        table = learn_and_store_ranges(db, user)
    except PermissionDenied as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    print(f"range table {table.version} learned")
    c2 = run_check2(db)
    print("check 2: " + (", ".join(f"{v} {k}" for k, v in sorted(c2.items())) or "nothing to check"))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser for every subcommand."""
    p = argparse.ArgumentParser(prog="python -m labeling", description="FNP TripleCheck labeling workflow "
                                "(research tool, not a diagnostic device). Data folder: $FNP_DATA_DIR or ./data.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create the data folder and apply database migrations").set_defaults(func=cmd_init)
    imp = sub.add_parser("import", help="import photos described by a manifest CSV")
    imp.add_argument("--images", required=True, help="folder holding the photos")
    imp.add_argument("--manifest", required=True, help="CSV: file, subject, movement, source[, mirrored, sex, age_group, cohort]")
    imp.add_argument("--actor", default="cli", help="name recorded in the audit log")
    imp.add_argument("--json", action="store_true", help="print the report as JSON")
    imp.set_defaults(func=cmd_import)
    demo = sub.add_parser("demo", help="load SYNTHETIC demo subjects (astronaut-based faces)")
    demo.add_argument("--subjects", type=int, default=14, help="synthetic subjects, 7 photos each (default 14)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--simulate-readers", type=float, metavar="ACCURACY", default=None,
                      help="also give every image two simulated reads of this accuracy (0-1)")
    demo.add_argument("--actor", default="cli")
    demo.set_defaults(func=cmd_demo)
    meas = sub.add_parser("measure", help="measure every image not yet measured (landmarks, indices, quality), then run check 2")
    meas.add_argument("--workers", type=int, default=None)
    meas.set_defaults(func=cmd_measure)
    rng = sub.add_parser("ranges", help="re-learn the check-2 range table from the check-1 consensus (a new version)")
    rng.add_argument("--as-user", required=True, help="a coordinator's user name (recorded in the audit log)")
    rng.set_defaults(func=cmd_ranges)
    users = sub.add_parser("users", help="manage users (password from $FNP_PASSWORD or a prompt)")
    users.add_argument("action", choices=["add", "list"])
    users.add_argument("name", nargs="?")
    users.add_argument("--role", action="append", help="reader, adjudicator, coordinator, auditor or admin (repeatable)")
    users.set_defaults(func=cmd_users)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to finish", file=sys.stderr)
        return 130
