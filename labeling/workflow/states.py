"""The triple-check state of every image, derived from append-only events, and checks 2 and 3.

State of an image, from its events (docs/workflow.md):
  awaiting_read_N       fewer effective reads than the image needs (N = the next read)
  agreed                all reads give the same label (check-1 consensus); check 2 not yet done
  accepted              check 2's range class equals the consensus (or check 2 is switched off)
  awaiting_adjudication reads disagree, a reader could not grade it, check 2 disagreed, or
                        check 2 could not measure the face
  final                 an adjudicator gave the final label
  excluded              an adjudicator excluded the image, with a reason
Nothing here is stored as a status: re-deriving it from the events always gives the same answer.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

import pandas as pd

from asymmetry.measure import LANDMARK_VERSION
from asymmetry.indices import INDEX_VERSION
from asymmetry.ranges import RangeTable, learn_ranges
from db.access import Database, audit, fetch_columns, now, transaction
from labeling.vocabulary import CLASSES, MAX_REASON
from labeling.workflow import settings
from labeling.accounts.actors import Actor, User
from labeling.accounts.permissions import authorize, require
from labeling.workflow.queue_errors import TooQuick

STATES = ("awaiting_read_1", "awaiting_read_2", "agreed", "accepted", "awaiting_adjudication", "final", "excluded")


class WorkflowError(ValueError):
    """A workflow action is not possible in the image's current state; the message says why."""


_STATE_SQL = """
WITH agg AS (SELECT image_id, n, lo, hi, labelled, last_read FROM image_read_summary),
adj AS (
    SELECT a.image_id, a.decision, a.label FROM effective_adjudications a
    WHERE a.id = (SELECT max(id) FROM effective_adjudications b WHERE b.image_id = a.image_id)),
c2 AS (
    SELECT c.image_id, c.outcome, c.consensus, c.range_class, c.at FROM check2_results c
    WHERE c.id = (SELECT max(id) FROM check2_results d WHERE d.image_id = c.image_id)),
lc AS (SELECT image_id, max(at) AS corrected_at FROM landmark_corrections GROUP BY image_id)
SELECT i.id AS image_id, i.movement, i.source, i.synthetic, i.subject_id, i.reads_required,
       coalesce(agg.n, 0) AS n_reads, agg.lo, agg.hi, coalesce(agg.labelled, 0) AS labelled, agg.last_read,
       adj.decision, adj.label AS adjudicated_label,
       c2.outcome AS check2, c2.consensus AS check2_consensus, c2.range_class, c2.at AS check2_at,
       coalesce(lc.corrected_at, '') AS corrected_at
FROM images i
LEFT JOIN agg ON agg.image_id = i.id
LEFT JOIN adj ON adj.image_id = i.id
LEFT JOIN c2 ON c2.image_id = i.id
LEFT JOIN lc ON lc.image_id = i.id
"""
_STATE_TEXT = ("movement", "source", "lo", "hi", "last_read", "decision", "adjudicated_label", "check2",
               "check2_consensus", "range_class", "check2_at", "corrected_at")


def image_states(db: Database, image_ids: list[int] | None = None) -> pd.DataFrame:
    """Return one row per image: its state, consensus, final label and why it needs adjudication."""
    sql = _STATE_SQL + (f" WHERE i.id IN ({','.join('?' * len(image_ids))})" if image_ids else "")
    # The same frame read_sql_query would build, fetched column-wise: 0.2 s less at 100,000 images.
    df = pd.DataFrame(fetch_columns(db, sql, image_ids or (), text=_STATE_TEXT))
    check2_on = bool(settings.get(db, "check2_enabled"))
    # Each image's own requirement: a later change of the setting never reopens a finished check 1.
    complete = df.n_reads >= df.reads_required
    agree = complete & (df.labelled == df.n_reads) & (df.lo == df.hi)
    consensus = df.lo.where(agree)
    # A check-2 result counts for the current reads and landmarks only: a later read, or a later hand
    # correction of the landmarks (labeling/workflow/landmark_edits.py), sends the image back to check 2.
    c2_valid = (df.check2.notna() & (df.check2_consensus == consensus) & (df.check2_at >= df.last_read)
                & (df.check2_at >= df.corrected_at))
    state = pd.Series("awaiting_read_1", index=df.index, dtype=object)
    state[(df.n_reads > 0) & ~complete] = "awaiting_read_" + (df.n_reads + 1).astype(str)
    state[complete & ~agree] = "awaiting_adjudication"
    state[agree] = "agreed" if check2_on else "accepted"
    if check2_on:
        state[agree & c2_valid & (df.check2 == "accepted")] = "accepted"
        state[agree & c2_valid & df.check2.isin(["mismatch", "undetermined"])] = "awaiting_adjudication"
    state[df.decision == "final"] = "final"
    state[df.decision == "exclude"] = "excluded"
    reason = pd.Series("", index=df.index, dtype=object)
    reason[complete & ~agree & (df.labelled < df.n_reads)] = "a reader could not grade it"
    reason[complete & ~agree & (df.labelled == df.n_reads)] = "check 1: the reads disagree"
    if check2_on:
        reason[agree & c2_valid & (df.check2 == "mismatch")] = "check 2: range class differs from the reads"
        reason[agree & c2_valid & (df.check2 == "undetermined")] = "check 2: the face could not be measured"
    final = pd.Series(None, index=df.index, dtype=object)
    final[state == "accepted"] = consensus[state == "accepted"]
    final[state == "final"] = df.adjudicated_label[state == "final"]
    out = df[["image_id", "movement", "source", "synthetic", "subject_id", "n_reads", "reads_required", "check2",
              "range_class", "last_read"]].copy()
    out["consensus"] = consensus
    out["state"] = state
    out["reason"] = reason
    out["final_label"] = final
    return out


def state_counts(db: Database) -> dict[str, int]:
    """Return how many images are in each state (every state present, zeros included)."""
    states = image_states(db)
    counts = states.state.value_counts().to_dict()
    k = int(max(states.reads_required.max() if len(states) else 0, settings.get(db, "reads_per_image")))
    names = [f"awaiting_read_{n}" for n in range(1, k + 1)] + list(STATES[2:])
    return {s: int(counts.get(s, 0)) for s in names}


def final_labels(db: Database) -> pd.DataFrame:
    """Return image_id, final_label and how it was reached ('check 2', 'check 1' or 'adjudication')."""
    st = image_states(db)
    st = st[st.state.isin(["accepted", "final"])]
    how = st.state.map({"final": "adjudication", "accepted": "check 2" if settings.get(db, "check2_enabled") else "check 1"})
    return pd.DataFrame({"image_id": st.image_id, "final_label": st.final_label, "how": how}).reset_index(drop=True)


# ---- ranges and check 2 -------------------------------------------------------------------


def _current_measurements(db: Database) -> pd.DataFrame:
    return db.frame(
        "SELECT m.image_id, m.status, m.rgas_signed, m.anas_signed FROM measurements m "
        "WHERE m.landmark_version = ? AND m.index_version = ?", [LANDMARK_VERSION, INDEX_VERSION])


def learn_and_store_ranges(db: Database, actor: Actor) -> RangeTable:
    """Learn the range table from the check-1 consensus images, store it as a new version; return it."""
    require(actor, "ranges.learn")
    st = image_states(db)
    cons = st[st.consensus.notna()][["image_id", "movement", "consensus"]]
    meas = _current_measurements(db)
    rows = cons.merge(meas[meas.status == "ok"], on="image_id").rename(columns={"consensus": "label"})
    s = settings.snapshot(db)
    params = {k: s[k] for k in ("range_lo", "range_hi", "range_min_count")}
    table = learn_ranges(rows[["movement", "label", "rgas_signed", "anas_signed"]], lo=params["range_lo"],
                         hi=params["range_hi"], min_count=int(params["range_min_count"]))
    # The versions of the indices it was learned on: a table is never applied to another formula's.
    # They are part of its name too, so the same cells learned under a new formula are stored anew.
    params.update(images=len(rows), landmark_version=LANDMARK_VERSION, index_version=INDEX_VERSION)
    named = f"{table.version}|{LANDMARK_VERSION}|{INDEX_VERSION}".encode()
    table = table.with_version("ranges-" + hashlib.sha256(named).hexdigest()[:12])
    with transaction(db) as conn:
        who = authorize(conn, actor, "ranges.learn")
        exists = conn.execute("SELECT 1 FROM range_tables WHERE version = ?", (table.version,)).fetchone()
        if not exists:
            # Each table strictly newer than the last (the newest is the one applied, on any backend).
            last = conn.execute("SELECT max(created_at) FROM range_tables").fetchone()[0]
            at = now()
            if last and at <= last:
                at = (dt.datetime.fromisoformat(last) + dt.timedelta(milliseconds=1)).isoformat(timespec="milliseconds")
            conn.execute("INSERT INTO range_tables (version, created_at, actor, params, table_json) VALUES (?,?,?,?,?)",
                         (table.version, at, who, json.dumps(params), table.to_json()))
            audit(conn, who, "ranges.learned", "range_table", table.version, images=len(rows))
    return table


_CURRENT_RANGES = "json_extract(params, '$.landmark_version') = ? AND json_extract(params, '$.index_version') = ?"


def latest_ranges(db: Database) -> RangeTable | None:
    """Return the newest stored range table learned on indices of the current landmark and index
    versions, or None before any was. A table learned on an older formula is never applied to
    indices of a newer one: check 2 waits until the ranges are learned again (`ranges_stale`)."""
    row = db.execute(f"SELECT table_json FROM range_tables WHERE {_CURRENT_RANGES} "
                     "ORDER BY created_at DESC LIMIT 1", [LANDMARK_VERSION, INDEX_VERSION]).fetchone()
    return RangeTable.from_json(row[0]) if row else None


def ranges_stale(db: Database) -> bool:
    """True when range tables exist but none was learned on the current index versions."""
    return db.execute(f"SELECT EXISTS (SELECT 1 FROM range_tables) AND NOT EXISTS (SELECT 1 FROM range_tables "
                      f"WHERE {_CURRENT_RANGES})", [LANDMARK_VERSION, INDEX_VERSION]).fetchone()[0] == 1


def run_check2(db: Database, actor: Actor, image_ids: list[int] | None = None) -> dict[str, int]:
    """Run check 2 on agreed images without a valid result, as `actor` (a coordinator, an admin or
    the shell); return counts per outcome.

    Uses the newest range table and records its version with each result. An image whose
    movement x class cell has too few images stays 'agreed' (no result) until the ranges are
    re-learned; an image whose face could not be measured goes to adjudication.
    """
    require(actor, "check2.run")
    if not settings.get(db, "check2_enabled"):
        return {}
    table = latest_ranges(db)
    st = image_states(db, image_ids)
    todo = st[st.state == "agreed"]
    if todo.empty or table is None:
        return {}
    meas = _current_measurements(db).set_index("image_id")
    counts: dict[str, int] = {}
    rows = []
    for r in todo.itertuples():
        if r.image_id not in meas.index:
            continue  # not measured yet: check 2 runs when it is
        m = meas.loc[r.image_id]
        if m.status != "ok":
            outcome = "undetermined"
            rows.append((r.image_id, table.version, r.consensus, None, None, 0, outcome,
                         f"face not measurable: {m.status}"))
        else:
            res = table.classify(r.movement, float(m.rgas_signed), float(m.anas_signed))
            if res.range_class is None:
                continue  # no usable box for this movement yet
            outcome = "accepted" if res.range_class == r.consensus else "mismatch"
            rows.append((r.image_id, table.version, r.consensus, res.range_class, float(res.distance),
                         int(res.out_of_range), outcome, res.message or ""))
        counts[outcome] = counts.get(outcome, 0) + 1
    if rows:
        with transaction(db) as conn:
            who = authorize(conn, actor, "check2.run")
            t = now()
            conn.executemany("INSERT INTO check2_results (image_id, range_version, consensus, range_class, distance, "
                             "out_of_range, outcome, message, at) VALUES (?,?,?,?,?,?,?,?,?)",
                             [(*r, t) for r in rows])
            audit(conn, who, "check2.run", "range_table", table.version, **counts)
    return counts


# ---- check 3: adjudication ----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """What an adjudicator sees for one image. Readers are 'Reader A/B/…' unless revealed."""

    image_id: int
    movement: str
    reason: str
    reads: list[dict]
    range_class: str | None
    rgas_signed: float | None
    anas_signed: float | None
    measurement_status: str | None
    stored_path: str
    mirrored: bool
    points: list | None
    size: tuple[int, int] = (0, 0)
    auto_points: list | None = None  # dlib's own points when `points` were corrected by hand


QUEUE_ORDERS = {
    "waiting": "waiting longest first",
    "disagreement": "check-1 disagreements first",
    "mismatch": "check-2 mismatches first",
    "subject": "by subject and movement",
}


def adjudication_queue(db: Database, adjudicator: User, order: str = "waiting") -> pd.DataFrame:
    """Return the images awaiting adjudication with why: image_id, movement, reason, subject (its
    pseudonymous code), waiting_since (the last read); in `order` (one of QUEUE_ORDERS)."""
    require(adjudicator, "adjudicate")
    st = image_states(db)
    q = st[st.state == "awaiting_adjudication"][["image_id", "movement", "reason", "subject_id", "last_read"]]
    codes = dict(db.execute("SELECT id, code FROM subjects").fetchall()) if len(q) else {}
    q = q.assign(subject=q.subject_id.map(codes), waiting_since=q.last_read)
    first = {"disagreement": ("check 1", "a reader"), "mismatch": ("check 2",)}.get(order)
    if first:
        q = q.assign(_first=~q.reason.str.startswith(first)).sort_values(["_first", "waiting_since", "image_id"])
    elif order == "subject":
        q = q.sort_values(["subject", "movement", "image_id"])
    else:
        q = q.sort_values(["waiting_since", "image_id"])
    return q[["image_id", "movement", "reason", "subject", "waiting_since"]].reset_index(drop=True)


def subject_images(db: Database, adjudicator: User, image_id: int) -> pd.DataFrame:
    """Return the images of the same subject as `image_id` (its seven movements, as imported):
    image_id, movement, state, label (the final label, else the check-1 consensus), stored_path,
    mirrored; for the adjudicator, who looks at a face's other movements first."""
    require(adjudicator, "adjudicate")
    ids = [r[0] for r in db.execute("SELECT id FROM images WHERE subject_id = (SELECT subject_id FROM images "
                                    "WHERE id = ?) ORDER BY movement, id", [image_id])]
    if not ids:
        return pd.DataFrame(columns=["image_id", "movement", "state", "label", "stored_path", "mirrored"])
    st = image_states(db, ids)
    paths = {r[0]: (r[1], bool(r[2])) for r in db.execute(
        f"SELECT id, stored_path, mirrored FROM images WHERE id IN ({','.join('?' * len(ids))})", ids)}
    st = st.sort_values(["movement", "image_id"])
    return pd.DataFrame({"image_id": st.image_id, "movement": st.movement, "state": st.state,
                         "label": st.final_label.where(st.final_label.notna(), st.consensus),
                         "stored_path": st.image_id.map(lambda i: paths[i][0]),
                         "mirrored": st.image_id.map(lambda i: paths[i][1])}).reset_index(drop=True)


def range_explanation(table: RangeTable | None, movement: str, rgas: float | None, anas: float | None,
                      status: str | None) -> tuple[str | None, str]:
    """Return (range class, one sentence saying why) for an image's point against the newest range
    table: the class whose box holds it, the nearest when it lies in none, or why there is none."""
    if status is None:
        return None, "No range class: the face has not been measured yet (Status: measure new images)."
    if status != "ok" or rgas is None or anas is None:
        return None, f"No range class: the face could not be measured ({str(status).replace('_', ' ')})."
    if table is None:
        return None, "No range class: no range table has been learned yet (Status: re-learn the range table)."
    res = table.classify(movement, float(rgas), float(anas))
    if res.range_class is None:
        return None, f"No range class: {res.message or 'no class of ' + movement + ' has a range box yet'}."
    if res.out_of_range:
        return res.range_class, (f"{res.range_class}: the point lies outside every box of {movement}; "
                                 f"{res.range_class}'s is the nearest, {res.distance:.1f} box widths away.")
    if len(res.candidates) > 1:
        return res.range_class, (f"{res.range_class}: the point lies in the boxes of {', '.join(res.candidates)}; "
                                 f"{res.range_class}'s centre is the nearest.")
    return res.range_class, f"{res.range_class}: the point lies inside the {res.range_class} box of {movement}."


def adjudication_case(db: Database, adjudicator: User, image_id: int) -> Case:
    """Return the evidence for one image awaiting adjudication."""
    require(adjudicator, "adjudicate")
    reveal = bool(settings.get(db, "reveal_readers"))
    st = image_states(db, [image_id])
    if st.empty:
        raise WorkflowError(f"no image {image_id}")
    s = st.iloc[0]
    reads = db.execute("SELECT r.label, r.cannot_grade, u.name, r.duration_ms FROM effective_reads r "
                       "JOIN users u ON u.id = r.reader_id WHERE r.image_id = ? ORDER BY r.id", [image_id]).fetchall()
    shown = [{"reader": name if reveal else f"Reader {chr(65 + i)}", "label": label, "cannot_grade": cg,
              "seconds": None if ms is None else round(ms / 1000, 1)} for i, (label, cg, name, ms) in enumerate(reads)]
    img = db.execute("SELECT movement, stored_path, mirrored, width, height FROM images WHERE id = ?", [image_id]).fetchone()
    m = db.execute("SELECT status, rgas_signed, anas_signed, points, auto_points FROM measurements WHERE image_id = ? "
                   "AND landmark_version = ? AND index_version = ? ORDER BY id DESC LIMIT 1",
                   [image_id, LANDMARK_VERSION, INDEX_VERSION]).fetchone()
    return Case(image_id, img[0], s.reason, shown, s.range_class if pd.notna(s.range_class) else None,
                m[1] if m else None, m[2] if m else None, m[0] if m else None, img[1], bool(img[2]),
                json.loads(m[3]) if m and m[3] else None, (img[3], img[4]),
                json.loads(m[4]) if m and m[4] else None)


def adjudicate(db: Database, adjudicator: User, image_id: int, label: str | None = None,
               exclude_reason: str | None = None, simulated: bool = False, shown_since: str | None = None,
               shown_ms: int | None = None, now_: dt.datetime | None = None) -> int:
    """Record the final label, or the exclusion with its reason; return the adjudication id.

    Only images awaiting adjudication (or already final, to correct a decision: the newest wins)
    can be decided. `shown_since` is when the page put the case on screen: a decision before the
    minimum viewing time is refused (TooQuick), so a double press never decides the next case.
    `shown_ms` is how long the browser had shown it, kept with the decision.
    """
    require(adjudicator, "adjudicate")
    if (label is None) == (not (exclude_reason or "").strip()):
        raise WorkflowError("give either the final label or a reason to exclude the image")
    if label is not None and label not in CLASSES:
        raise WorkflowError(f"unknown label {label!r}: use one of {', '.join(CLASSES)}")
    decision = "final" if label is not None else "exclude"
    reason = None if label is not None else exclude_reason.strip()[:MAX_REASON]
    t = now_ or dt.datetime.now(dt.timezone.utc)
    if shown_since is not None:
        dwell = dt.timedelta(milliseconds=int(settings.get(db, "key_dwell_ms")))
        if t - dt.datetime.fromisoformat(shown_since) < dwell:
            raise TooQuick(f"too quick: the case had been shown for less than {dwell.total_seconds():g} s; "
                           "nothing was saved")
    with transaction(db) as conn:
        who = authorize(conn, adjudicator, "adjudicate")
        # The state is checked under the write lock: a reader's undo landing between a check and
        # the insert would otherwise let a decision through on an image no longer awaiting one.
        st = image_states(db, [image_id])
        if st.empty:
            raise WorkflowError(f"no image {image_id}")
        state = st.iloc[0].state
        if state not in ("awaiting_adjudication", "final", "excluded"):
            raise WorkflowError(f"image {image_id} is {state.replace('_', ' ')}; only images awaiting adjudication "
                                "can be decided")
        adj_id = conn.execute("INSERT INTO adjudications (image_id, adjudicator_id, decision, label, reason, at, simulated, "
                              "shown_ms) VALUES (?,?,?,?,?,?,?,?)",
                              (image_id, adjudicator.id, decision, label, reason, t.isoformat(timespec="milliseconds"),
                               int(simulated), shown_ms)).lastrowid
        audit(conn, who, f"adjudication.{decision}", "image", image_id, label=label, reason=reason,
              previous_state=state)
    return adj_id


def undo_last_adjudication(db: Database, adjudicator: User, now_: dt.datetime | None = None) -> int:
    """Take back the adjudicator's last decision within the undo window; return the image id, which
    is then as it was before (awaiting adjudication, or its earlier decision). The decision stays
    on record; an undo event supersedes it."""
    require(adjudicator, "adjudicate")
    t = now_ or dt.datetime.now(dt.timezone.utc)
    window = dt.timedelta(seconds=int(settings.get(db, "undo_seconds")))
    with transaction(db) as conn:
        who = authorize(conn, adjudicator, "adjudicate")
        last = conn.execute("SELECT id, image_id, at FROM effective_adjudications WHERE adjudicator_id = ? "
                            "ORDER BY id DESC LIMIT 1", (adjudicator.id,)).fetchone()
        if last is None:
            raise WorkflowError("there is no decision of yours to undo")
        adj_id, image_id, at = last
        if t - dt.datetime.fromisoformat(at) > window:
            raise WorkflowError(f"decisions can be undone for {int(window.total_seconds())} seconds only")
        newer = conn.execute("SELECT 1 FROM effective_adjudications WHERE image_id = ? AND id > ?",
                             (image_id, adj_id)).fetchone()
        if newer:
            raise WorkflowError("another adjudicator has decided this image since; it cannot be undone")
        conn.execute("INSERT INTO adjudication_undos (adjudication_id, adjudicator_id, at) VALUES (?, ?, ?)",
                     (adj_id, adjudicator.id, t.isoformat(timespec="milliseconds")))
        audit(conn, who, "adjudication.undone", "image", image_id, adjudication_id=adj_id)
    return image_id


def movement_points(db: Database, movement: str) -> pd.DataFrame:
    """Return rgas, anas, label (check-1 consensus), image_id of the measured consensus images of a movement."""
    st = image_states(db)
    st = st[(st.movement == movement) & st.consensus.notna()][["image_id", "consensus"]]
    meas = _current_measurements(db)
    pts = st.merge(meas[meas.status == "ok"], on="image_id")
    return pd.DataFrame({"image_id": pts.image_id, "rgas": pts.rgas_signed, "anas": pts.anas_signed,
                         "label": pts.consensus})


def reader_summary(db: Database) -> pd.DataFrame:
    """Return per reader: effective reads, cannot-grade count and median seconds per read (no labels)."""
    return db.frame(
        "SELECT u.name AS reader, count(*) AS reads, sum(r.cannot_grade IS NOT NULL) AS cannot_grade, "
        "round(avg(r.duration_ms) / 1000.0, 1) AS mean_seconds, max(r.submitted_at) AS last_read "
        "FROM effective_reads r JOIN users u ON u.id = r.reader_id GROUP BY u.name ORDER BY u.name")
