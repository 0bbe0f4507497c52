"""Reader quality control while the study runs: mirror items and gold items in each reader's queue.

A share of every reader's queue (setting `qc_share`, default 5%) is quality-control items, shown
exactly as an ordinary image (same page, same keys, same messages, same progress):
- a **mirror item** is a horizontally flipped copy of an image the reader graded at least
  `MIRROR_GAP` reads earlier, with the original's movement and orientation note. The flipped face's
  weak side is the other one, so a consistent answer has the same degree on the other side (N stays
  N): it measures whether the reader is consistent with themselves and reads sides right;
- a **gold item** is an image with a final label that a coordinator marked as gold and the reader
  has not read: it measures the reader against the project's ground truth.
QC answers are their own append-only events (`qc_answers`), never reads: they change no image's
state, are never exported and never enter the agreement between readers. Per-reader results (mirror
consistency, gold accuracy, side bias, drift over time) are on the Agreement page and in
`python -m labeling agreement --json` (docs/agreement.md, "Reader quality control").
"""
from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from dataclasses import dataclass

import numpy as np
import pandas as pd

from db.access import Database, audit, transaction
from labeling.accounts.actors import Actor, User
from labeling.accounts.permissions import authorize, require

MIRROR_GAP = 10  # reads between an image and its mirror item, so the mirror is not recognised as a repeat


class QCError(ValueError):
    """A quality-control action cannot be done; the message says why."""


def mirror_label(label: str) -> str:
    """The label a flipped face deserves: the same degree on the other side (N stays N)."""
    return {"L": "R", "R": "L"}.get(label[0], "") + label[1:] if label != "N" else "N"


def _draw(reader_id: int, made: int, what: str) -> float:
    """A number in [0, 1) drawn from the reader and how many answers they have given: the queue's
    QC decisions are seeded per reader, like its reading order."""
    digest = hashlib.blake2b(f"fnp-qc:{what}:{reader_id}:{made}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2 ** 64


def _ts(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds")


def held_item(conn: sqlite3.Connection, reader: User, t: dt.datetime):
    """The QC item the reader holds now (id, image_id, kind, claimed_at, lease_expires), or None."""
    return conn.execute("SELECT q.id, q.image_id, q.kind, q.claimed_at, q.lease_expires FROM qc_items q "
                        "WHERE q.reader_id = ? AND q.lease_expires > ? AND NOT EXISTS (SELECT 1 FROM "
                        "effective_qc_answers a WHERE a.qc_item_id = q.id) ORDER BY q.lease_expires DESC LIMIT 1",
                        (reader.id, _ts(t))).fetchone()


def _gold_candidates(conn: sqlite3.Connection, reader: User) -> list[int]:
    """Gold images (latest mark: gold) the reader has neither read nor been shown as gold."""
    return [r[0] for r in conn.execute(
        "SELECT g.image_id FROM gold_marks g WHERE g.id = (SELECT max(id) FROM gold_marks h WHERE h.image_id = "
        "g.image_id) AND g.gold = 1 AND NOT EXISTS (SELECT 1 FROM reads r WHERE r.image_id = g.image_id AND "
        "r.reader_id = ?) AND NOT EXISTS (SELECT 1 FROM qc_items q WHERE q.reader_id = ? AND q.kind = 'gold' AND "
        "q.image_id = g.image_id) ORDER BY g.image_id", (reader.id, reader.id))]


def _mirror_candidates(conn: sqlite3.Connection, reader: User) -> list[int]:
    """Images the reader labelled at least MIRROR_GAP reads ago and has not been shown mirrored."""
    return [r[0] for r in conn.execute(
        "SELECT r.image_id FROM effective_reads r WHERE r.reader_id = ? AND r.label IS NOT NULL AND r.id <= "
        "coalesce((SELECT id FROM reads WHERE reader_id = ? AND kind = 'read' ORDER BY id DESC LIMIT 1 OFFSET ?), -1) "
        "AND NOT EXISTS (SELECT 1 FROM qc_items q WHERE q.reader_id = ? AND q.kind = 'mirror' AND "
        "q.image_id = r.image_id) ORDER BY r.id", (reader.id, reader.id, MIRROR_GAP, reader.id))]


def claim_item(conn: sqlite3.Connection, reader: User, t: dt.datetime, made: int, share: float,
               lease: dt.timedelta, avoid_subject: int | None = None):
    """Inside claim_next's transaction: when the reader's draw says so and an item is available,
    hand over a QC item (one left unanswered first, else a new one, of another face than
    `avoid_subject` where possible); return (id, image_id, kind, claimed_at, lease_expires) or None."""
    if share <= 0 or _draw(reader.id, made, "due") >= share:
        return None
    left = conn.execute("SELECT id, image_id, kind FROM qc_items q WHERE reader_id = ? AND (lease_expires IS NULL OR "
                        "lease_expires <= ?) AND NOT EXISTS (SELECT 1 FROM effective_qc_answers a WHERE "
                        "a.qc_item_id = q.id) ORDER BY id LIMIT 1", (reader.id, _ts(t))).fetchone()
    if left:  # one handed over before and never answered (signed out, undone, expired): it first
        conn.execute("UPDATE qc_items SET claimed_at = ?, lease_expires = ? WHERE id = ?",
                     (_ts(t), _ts(t + lease), left[0]))
        return left[0], left[1], left[2], _ts(t), _ts(t + lease)
    kinds = ["gold", "mirror"] if _draw(reader.id, made, "kind") < 0.5 else ["mirror", "gold"]
    for kind in kinds:
        found = _gold_candidates(conn, reader) if kind == "gold" else _mirror_candidates(conn, reader)
        if kind == "gold":  # a gold item is scored on its final label: it needs one now
            found = [i for i in found if final_label_of(conn, i) is not None]
        if found and avoid_subject is not None:  # not the face just answered, as in the reading order
            other = [i for i in found if conn.execute("SELECT subject_id FROM images WHERE id = ?", (i,)).fetchone()[0]
                     != avoid_subject]
            found = other or found
        if found:
            image_id = found[int(_draw(reader.id, made, "pick") * len(found))]
            qc_id = conn.execute("INSERT INTO qc_items (reader_id, kind, image_id, created_at, claimed_at, "
                                 "lease_expires) VALUES (?, ?, ?, ?, ?, ?)",
                                 (reader.id, kind, image_id, _ts(t), _ts(t), _ts(t + lease))).lastrowid
            return qc_id, image_id, kind, _ts(t), _ts(t + lease)
    return None


def final_label_of(conn: sqlite3.Connection, image_id: int) -> str | None:
    """The image's final label, read on this connection (inside the caller's transaction): its
    latest effective adjudication's label, else its check-1 consensus once check 2 accepted it (or
    at once when check 2 is off); None when it has none yet."""
    row = conn.execute("SELECT decision, label FROM effective_adjudications WHERE image_id = ? ORDER BY id DESC "
                       "LIMIT 1", (image_id,)).fetchone()
    if row is not None:
        return row[1] if row[0] == "final" else None
    s = conn.execute("SELECT s.n, s.lo, s.hi, s.labelled, i.reads_required, s.last_read FROM image_read_summary s "
                     "JOIN images i ON i.id = s.image_id WHERE s.image_id = ?", (image_id,)).fetchone()
    if s is None or s[0] < s[4] or s[3] != s[0] or s[1] != s[2]:
        return None
    on = conn.execute("SELECT value FROM settings WHERE key = 'check2_enabled'").fetchone()
    if on is not None and on[0] == "false":
        return s[1]
    c2 = conn.execute("SELECT outcome, consensus, at FROM check2_results WHERE image_id = ? ORDER BY id DESC LIMIT 1",
                      (image_id,)).fetchone()
    return s[1] if c2 is not None and c2[0] == "accepted" and c2[1] == s[1] and c2[2] >= s[5] else None


def submit_answer(db: Database, reader: User, qc_id: int, label: str | None, cannot_grade: str | None,
                  t: dt.datetime, dwell: dt.timedelta, started_at: str | None = None, shown_ms: int | None = None,
                  token: str | None = None, simulated: bool = False) -> int:
    """Record the reader's answer to the QC item they hold; return the answer's id. Checked like a
    read: held by them, the token of this showing, after the minimum viewing time."""
    from labeling.workflow.queue_errors import NotReserved, check_showing, duration_ms

    with transaction(db) as conn:
        who = authorize(conn, reader, "read.submit")
        item = conn.execute("SELECT claimed_at FROM qc_items WHERE id = ? AND reader_id = ? AND NOT EXISTS (SELECT 1 "
                            "FROM effective_qc_answers a WHERE a.qc_item_id = qc_items.id)", (qc_id, reader.id)).fetchone()
        if item is None:
            raise NotReserved()
        check_showing(token, f"q{qc_id}.{item[0]}", item[0], t, dwell)
        duration = duration_ms(t, started_at)
        answer = conn.execute("INSERT INTO qc_answers (qc_item_id, reader_id, label, cannot_grade, started_at, "
                              "submitted_at, duration_ms, shown_ms, simulated) VALUES (?,?,?,?,?,?,?,?,?)",
                              (qc_id, reader.id, label, cannot_grade, started_at, _ts(t), duration, shown_ms,
                               int(simulated))).lastrowid
        conn.execute("UPDATE qc_items SET lease_expires = NULL WHERE id = ?", (qc_id,))
        audit(conn, who, "qc.answered", "qc_item", qc_id, answer_id=answer)
    return answer


def undo_answer(conn: sqlite3.Connection, reader: User, answer_id: int, qc_id: int, t: dt.datetime,
                lease: dt.timedelta, who: str) -> None:
    """Inside undo_last_read's transaction: take back the reader's last QC answer; they hold the
    item again (as an undone read gives the image back)."""
    conn.execute("INSERT INTO qc_answers (qc_item_id, reader_id, kind, supersedes, submitted_at) VALUES "
                 "(?, ?, 'undo', ?, ?)", (qc_id, reader.id, answer_id, _ts(t)))
    conn.execute("UPDATE qc_items SET claimed_at = ?, lease_expires = ? WHERE id = ?", (_ts(t), _ts(t + lease), qc_id))
    audit(conn, who, "qc.undone", "qc_item", qc_id, answer_id=answer_id)


# ---- gold marks ----------------------------------------------------------------------------------


def mark_gold(db: Database, actor: Actor, image_ids: list[int], gold: bool = True) -> int:
    """Mark (or unmark) final-labelled images as gold for readers' quality control; return how
    many marks were recorded. An image without a final label is refused (QCError), as a whole."""
    require(actor, "qc.manage")
    ids = sorted({int(i) for i in image_ids})
    if not ids:
        return 0
    with transaction(db) as conn:
        who = authorize(conn, actor, "qc.manage")
        if gold:
            missing = [i for i in ids if final_label_of(conn, i) is None]
            if missing:
                raise QCError(f"only images with a final label can be gold; image(s) {', '.join(map(str, missing[:10]))}"
                              f"{' ...' if len(missing) > 10 else ''} have none")
        at = _ts(dt.datetime.now(dt.timezone.utc))
        conn.executemany("INSERT INTO gold_marks (image_id, gold, actor, at) VALUES (?, ?, ?, ?)",
                         [(i, int(gold), who, at) for i in ids])
        audit(conn, who, "qc.gold_marked" if gold else "qc.gold_unmarked", "images", None, images=ids)
    return len(ids)


def gold_images(db: Database) -> list[int]:
    """Images whose latest mark is gold."""
    return [r[0] for r in db.execute("SELECT g.image_id FROM gold_marks g WHERE g.id = (SELECT max(id) FROM "
                                     "gold_marks h WHERE h.image_id = g.image_id) AND g.gold = 1 ORDER BY g.image_id")]


# ---- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QCData:
    """What the results are computed from: one row per effective QC answer, and one row per
    effective read with the image's final label (for side bias and drift)."""

    answers: pd.DataFrame  # reader, kind, image_id, subject, answer, expected, submitted_at
    reads: pd.DataFrame  # reader, image_id, subject, label, final, submitted_at


def load_qc(db: Database) -> QCData:
    """Read every effective QC answer with what it is scored against, and the reads with finals."""
    from labeling.workflow.states import image_states

    ans = db.frame(
        "SELECT u.name AS reader, q.kind, q.image_id, i.subject_id AS subject, a.label AS answer, a.submitted_at, "
        "(SELECT r.label FROM effective_reads r WHERE r.image_id = q.image_id AND r.reader_id = q.reader_id "
        " ORDER BY r.id LIMIT 1) AS own_read "
        "FROM effective_qc_answers a JOIN qc_items q ON q.id = a.qc_item_id JOIN users u ON u.id = a.reader_id "
        "JOIN images i ON i.id = q.image_id ORDER BY a.id")
    states = image_states(db)
    finals = dict(zip(states.image_id, states.final_label))
    expected = [mirror_label(own) if kind == "mirror" and isinstance(own, str) else
                finals.get(img) if kind == "gold" else None
                for kind, img, own in zip(ans.kind, ans.image_id, ans.own_read)]
    ans = ans.assign(expected=expected).drop(columns=["own_read"])
    reads = db.frame("SELECT u.name AS reader, r.image_id, i.subject_id AS subject, r.label, r.submitted_at "
                              "FROM effective_reads r JOIN users u ON u.id = r.reader_id JOIN images i ON "
                              "i.id = r.image_id ORDER BY r.id")
    reads = reads.assign(final=reads.image_id.map(finals))
    return QCData(ans, reads)


def _side(labels: pd.Series) -> np.ndarray:
    return np.array([0 if not isinstance(x, str) else {"L": -1, "R": 1}.get(x[0], 0) for x in labels], float)


def _proportions(frame: pd.DataFrame, hit: pd.Series, readers: list[str]) -> pd.DataFrame:
    """Per reader: k, n, p and its subject-cluster Clopper-Pearson interval."""
    from labeling.agreement.stats import cluster_sums, proportion_ci

    if frame.empty:
        return pd.DataFrame({"n": 0, "p": np.nan, "lo": np.nan, "hi": np.nan}, index=readers)
    group = frame.reader.map({r: i for i, r in enumerate(readers)}).to_numpy()
    subj_codes, subject = np.unique(frame.subject.to_numpy(), return_inverse=True)
    k, n, kk, kn, nn, s = cluster_sums(group, subject, hit.to_numpy().astype(float), len(readers), len(subj_codes))
    ci = proportion_ci(k, n, kk, kn, nn, s)
    return pd.DataFrame({"n": n.astype(int), "p": ci.p, "lo": ci.lo, "hi": ci.hi}, index=readers)


def reader_qc(data: QCData) -> pd.DataFrame:
    """One row per reader: mirror items answered and consistent (same degree, other side), gold
    items and their exact accuracy and side agreement (each with a subject-cluster interval), side
    bias (mean of the reader's side minus the final label's, -1 all-left ... +1 all-right, over
    their reads of images with a final label), and drift (exact agreement with the final label in
    the first and the last third of their reads, in time order)."""
    readers = sorted(set(data.answers.reader) | set(data.reads.reader))
    out = pd.DataFrame(index=readers)
    ans = data.answers[data.answers.answer.notna() & data.answers.expected.notna()]
    mirror, gold = ans[ans.kind == "mirror"], ans[ans.kind == "gold"]
    m = _proportions(mirror, mirror.answer == mirror.expected, readers)
    g = _proportions(gold, gold.answer == gold.expected, readers)
    gs = _proportions(gold, pd.Series(_side(gold.answer) == _side(gold.expected), index=gold.index), readers)
    for name, frame in (("mirror", m), ("gold", g), ("gold_side", gs)):
        for col in frame.columns:
            out[f"{name}_{col}"] = frame[col]
    reads = data.reads[data.reads.label.notna() & data.reads.final.notna()]
    bias, first, last, n_final = [], [], [], []
    for r in readers:
        mine = reads[reads.reader == r]
        n_final.append(len(mine))
        bias.append(float(np.mean(_side(mine.label) - _side(mine.final))) if len(mine) else np.nan)
        third = len(mine) // 3
        if third >= 5:
            hits = (mine.label == mine.final).to_numpy()
            first.append(float(hits[:third].mean()))
            last.append(float(hits[-third:].mean()))
        else:
            first.append(np.nan)
            last.append(np.nan)
    out["reads_with_final"] = n_final
    out["side_bias"] = bias
    out["agreement_first_third"] = first
    out["agreement_last_third"] = last
    out["drift"] = out.agreement_last_third - out.agreement_first_third
    return out.rename_axis("reader").reset_index()


def describe(row: pd.Series) -> str:
    """One reader's QC in a sentence (the page's and the report's)."""
    def pct(p, lo, hi):
        return "—" if p != p else f"{p:.0%} [{lo:.0%}, {hi:.0%}]"

    parts = [f"mirror items consistent {pct(row.mirror_p, row.mirror_lo, row.mirror_hi)} of {int(row.mirror_n)}",
             f"gold items exact {pct(row.gold_p, row.gold_lo, row.gold_hi)} of {int(row.gold_n)}"]
    if row.side_bias == row.side_bias:
        lean = "right" if row.side_bias > 0 else "left"
        parts.append(f"side bias {row.side_bias:+.2f} (leans {lean} of the final labels)" if abs(row.side_bias) >= 0.05
                     else f"side bias {row.side_bias:+.2f} (none to speak of)")
    if row.drift == row.drift:
        parts.append(f"agreement with the final label {row.agreement_first_third:.0%} in their first third of reads, "
                     f"{row.agreement_last_third:.0%} in the last")
    return "; ".join(parts)


__all__ = ["MIRROR_GAP", "QCData", "QCError", "claim_item", "describe", "final_label_of", "gold_images", "held_item",
           "load_qc", "mark_gold", "mirror_label", "reader_qc", "submit_answer", "undo_answer"]
