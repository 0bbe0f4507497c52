"""Numbered schema migrations, applied in order on every start; applying them again is a no-op.

Each migration is a list of SQL statements run in one transaction together with its row in
`_migrations`, so a crash leaves the schema either before or after a step, never half-way.
Never edit a migration that has shipped: add the next number.
"""
from __future__ import annotations

from db.access import Database, now, transaction

APPEND_ONLY = ("reads", "adjudications", "audit_log")  # more in later migrations: see _append_only calls


def _append_only(table: str) -> list[str]:
    """Triggers that make `table` append-only in the database itself."""
    return [
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: UPDATE refused'); END",
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: DELETE refused'); END",
    ]


M0001_CORE = [
    """CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL)""",
    """CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        roles TEXT NOT NULL DEFAULT '',
        active INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL)""",
    """CREATE TABLE subjects (
        id INTEGER PRIMARY KEY,
        code TEXT NOT NULL UNIQUE,
        sex TEXT,
        age_group TEXT CHECK (age_group IS NULL OR age_group IN ('<40', '40-65', '>65')),
        cohort TEXT CHECK (cohort IS NULL OR cohort IN ('patient', 'control')),
        synthetic INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL)""",
    """CREATE TABLE imports (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        actor TEXT,
        origin TEXT,
        manifest TEXT,
        counts TEXT)""",
    """CREATE TABLE images (
        id INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL UNIQUE,
        subject_id INTEGER NOT NULL REFERENCES subjects(id),
        movement TEXT NOT NULL CHECK (movement IN ('MV0', 'MV1', 'MV2', 'MV3', 'MV4', 'MV5', 'MV6')),
        source TEXT NOT NULL CHECK (source IN ('hospital', 'mobile')),
        mirrored INTEGER NOT NULL CHECK (mirrored IN (0, 1)),
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        format TEXT NOT NULL,
        mode TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        stored_path TEXT NOT NULL,
        notes TEXT NOT NULL DEFAULT '',
        synthetic INTEGER NOT NULL DEFAULT 0,
        import_id INTEGER REFERENCES imports(id),
        imported_at TEXT NOT NULL)""",
    "CREATE INDEX images_subject ON images(subject_id)",
    "CREATE INDEX images_movement ON images(movement)",
    # Original file names are kept apart from the images: they may identify a patient and never
    # leave the project (exports use hashes only).
    """CREATE TABLE image_names (
        image_id INTEGER NOT NULL REFERENCES images(id),
        original_name TEXT NOT NULL,
        import_id INTEGER REFERENCES imports(id),
        PRIMARY KEY (image_id, original_name))""",
    """CREATE TABLE import_issues (
        id INTEGER PRIMARY KEY,
        import_id INTEGER NOT NULL REFERENCES imports(id),
        file TEXT NOT NULL,
        row INTEGER,
        severity TEXT NOT NULL CHECK (severity IN ('error', 'warning', 'info')),
        reason TEXT NOT NULL)""",
    # The generator's known class of a synthetic image. Readers never see it: only the demo
    # simulation and the synthetic-accuracy audit read this table.
    """CREATE TABLE ground_truth (
        image_id INTEGER PRIMARY KEY REFERENCES images(id),
        label TEXT NOT NULL CHECK (label IN ('N', 'L1', 'L2', 'L3', 'R1', 'R2', 'R3')),
        generator TEXT NOT NULL)""",
    """CREATE TABLE reads (
        id INTEGER PRIMARY KEY,
        image_id INTEGER NOT NULL REFERENCES images(id),
        reader_id INTEGER NOT NULL REFERENCES users(id),
        label TEXT CHECK (label IS NULL OR label IN ('N', 'L1', 'L2', 'L3', 'R1', 'R2', 'R3')),
        cannot_grade TEXT,
        started_at TEXT,
        submitted_at TEXT NOT NULL,
        duration_ms INTEGER,
        supersedes INTEGER REFERENCES reads(id),
        kind TEXT NOT NULL DEFAULT 'read' CHECK (kind IN ('read', 'undo')),
        simulated INTEGER NOT NULL DEFAULT 0,
        CHECK ((kind = 'undo') OR (label IS NOT NULL) <> (cannot_grade IS NOT NULL)))""",
    "CREATE INDEX reads_image ON reads(image_id)",
    "CREATE INDEX reads_reader ON reads(reader_id)",
    """CREATE TABLE adjudications (
        id INTEGER PRIMARY KEY,
        image_id INTEGER NOT NULL REFERENCES images(id),
        adjudicator_id INTEGER NOT NULL REFERENCES users(id),
        decision TEXT NOT NULL CHECK (decision IN ('final', 'exclude')),
        label TEXT CHECK (label IS NULL OR label IN ('N', 'L1', 'L2', 'L3', 'R1', 'R2', 'R3')),
        reason TEXT,
        at TEXT NOT NULL,
        simulated INTEGER NOT NULL DEFAULT 0,
        CHECK ((decision = 'final' AND label IS NOT NULL) OR (decision = 'exclude' AND reason IS NOT NULL)))""",
    "CREATE INDEX adjudications_image ON adjudications(image_id)",
    """CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        entity TEXT NOT NULL DEFAULT '',
        entity_id TEXT,
        detail TEXT NOT NULL DEFAULT '{}')""",
    "CREATE INDEX audit_at ON audit_log(at)",
    *[t for table in APPEND_ONLY for t in _append_only(table)],
]

M0002_MEASUREMENTS = [
    # One row per image x landmark model x index formula: a new formula adds rows computed from
    # the stored points; a new landmark model re-runs dlib. Old rows stay for the record.
    """CREATE TABLE measurements (
        id INTEGER PRIMARY KEY,
        image_id INTEGER NOT NULL REFERENCES images(id),
        landmark_version TEXT NOT NULL,
        index_version TEXT NOT NULL,
        status TEXT NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        points TEXT,
        box TEXT,
        score REAL,
        n_faces INTEGER,
        indices TEXT,
        rgas REAL, anas REAL, rgas_signed REAL, anas_signed REAL,
        side TEXT, ipd_px REAL,
        sharpness REAL, face_fraction REAL, blurry INTEGER, distant INTEGER,
        measured_at TEXT NOT NULL,
        UNIQUE (image_id, landmark_version, index_version))""",
    "CREATE INDEX measurements_image ON measurements(image_id)",
    """CREATE TABLE quality_overrides (
        id INTEGER PRIMARY KEY,
        image_id INTEGER NOT NULL REFERENCES images(id),
        flag TEXT NOT NULL CHECK (flag IN ('blurry', 'distant')),
        value INTEGER NOT NULL CHECK (value IN (0, 1)),
        reason TEXT NOT NULL DEFAULT '',
        actor TEXT NOT NULL,
        at TEXT NOT NULL)""",
    *_append_only("quality_overrides"),
]

M0003_WORKFLOW = [
    # The read queue: one row per image x read slot. A work queue is mutable by nature (leases
    # come and go); the reads themselves stay append-only events in `reads`.
    """CREATE TABLE read_slots (
        image_id INTEGER NOT NULL REFERENCES images(id),
        slot INTEGER NOT NULL CHECK (slot >= 1),
        reader_id INTEGER REFERENCES users(id),
        lease_expires TEXT,
        read_id INTEGER REFERENCES reads(id),
        reserved_for INTEGER REFERENCES users(id),
        available_at TEXT,
        PRIMARY KEY (image_id, slot))""",
    "CREATE INDEX read_slots_open ON read_slots(image_id, slot) WHERE read_id IS NULL",
    "CREATE INDEX read_slots_reader ON read_slots(reader_id, image_id)",
    "CREATE INDEX read_slots_held ON read_slots(reader_id, lease_expires) WHERE read_id IS NULL",
    "CREATE INDEX reads_supersedes ON reads(supersedes) WHERE supersedes IS NOT NULL",
    """CREATE TABLE range_tables (
        version TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        actor TEXT NOT NULL,
        params TEXT NOT NULL,
        table_json TEXT NOT NULL)""",
    *_append_only("range_tables"),
    """CREATE TABLE check2_results (
        id INTEGER PRIMARY KEY,
        image_id INTEGER NOT NULL REFERENCES images(id),
        range_version TEXT NOT NULL REFERENCES range_tables(version),
        consensus TEXT NOT NULL CHECK (consensus IN ('N', 'L1', 'L2', 'L3', 'R1', 'R2', 'R3')),
        range_class TEXT,
        distance REAL,
        out_of_range INTEGER NOT NULL DEFAULT 0,
        outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'mismatch', 'undetermined')),
        message TEXT NOT NULL DEFAULT '',
        at TEXT NOT NULL)""",
    "CREATE INDEX check2_image ON check2_results(image_id)",
    *_append_only("check2_results"),
]

M0004_CROP_CORRECTIONS = [
    # A coordinator's corrected crop box, in full-resolution pixels of the stored original (EXIF
    # orientation applied, like the landmarks). Boxes, never pixels; append-only; the latest wins.
    """CREATE TABLE crop_corrections (
        id INTEGER PRIMARY KEY,
        image_id INTEGER NOT NULL REFERENCES images(id),
        x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
        reason TEXT NOT NULL,
        actor TEXT NOT NULL,
        at TEXT NOT NULL,
        CHECK (x1 > x0 AND y1 > y0))""",
    "CREATE INDEX crop_corrections_image ON crop_corrections(image_id)",
    *_append_only("crop_corrections"),
]

M0005_PREDICTIONS = [
    # Imported trainer runs (issue 5): one row per run folder, immutable like the reads. The
    # predictions keep the image hash, the identity across projects; image_id is filled when the
    # image was known at import, and the audit joins on the hash anyway.
    """CREATE TABLE model_runs (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        arch TEXT,
        imported_at TEXT NOT NULL,
        actor TEXT NOT NULL,
        source TEXT NOT NULL DEFAULT '',
        config TEXT NOT NULL DEFAULT '{}',
        predictions_sha256 TEXT NOT NULL UNIQUE,
        n_predictions INTEGER NOT NULL)""",
    """CREATE TABLE model_predictions (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES model_runs(id),
        row INTEGER NOT NULL,
        image_sha256 TEXT NOT NULL,
        image_id INTEGER REFERENCES images(id),
        split TEXT NOT NULL,
        fold INTEGER,
        movement TEXT CHECK (movement IS NULL OR movement IN ('MV0', 'MV1', 'MV2', 'MV3', 'MV4', 'MV5', 'MV6')),
        label TEXT CHECK (label IS NULL OR label IN ('N', 'L1', 'L2', 'L3', 'R1', 'R2', 'R3')),
        predicted TEXT NOT NULL CHECK (predicted IN ('N', 'L1', 'L2', 'L3', 'R1', 'R2', 'R3')),
        prob_N REAL, prob_L1 REAL, prob_L2 REAL, prob_L3 REAL, prob_R1 REAL, prob_R2 REAL, prob_R3 REAL,
        UNIQUE (run_id, row))""",
    "CREATE INDEX model_predictions_image ON model_predictions(image_sha256)",
    "CREATE INDEX model_predictions_split ON model_predictions(split, run_id)",
    *_append_only("model_runs"),
    *_append_only("model_predictions"),
]

_SUMMARY_OF = """
    SELECT {image}, count(*), min(label), max(label), count(label), max(submitted_at)
    FROM reads r WHERE r.image_id = {image} AND r.kind = 'read'
      AND NOT EXISTS (SELECT 1 FROM reads u WHERE u.supersedes = r.id)"""

M0006_READ_SUMMARY = [
    # Per-image summary of the effective reads, kept by the database itself in the same
    # transaction as every new read or undo (reads are append-only, so INSERT is the only
    # change). It is derived data: workflow.image_states reads it instead of aggregating a
    # million reads on every page view, and tests check it equals the full recomputation.
    """CREATE TABLE image_read_summary (
        image_id INTEGER PRIMARY KEY REFERENCES images(id),
        n INTEGER NOT NULL,
        lo TEXT,
        hi TEXT,
        labelled INTEGER NOT NULL,
        last_read TEXT)""",
    "INSERT INTO image_read_summary (image_id, n, lo, hi, labelled, last_read) "
    "SELECT image_id, count(*), min(label), max(label), count(label), max(submitted_at) FROM reads r "
    "WHERE r.kind = 'read' AND NOT EXISTS (SELECT 1 FROM reads u WHERE u.supersedes = r.id) GROUP BY image_id",
    "CREATE TRIGGER reads_summary AFTER INSERT ON reads BEGIN "
    "INSERT OR REPLACE INTO image_read_summary (image_id, n, lo, hi, labelled, last_read) "
    + _SUMMARY_OF.format(image="NEW.image_id") + "; END",
]

M0007_SLOT_BY_READ = [
    # Undo finds the slot of the read it takes back by read id; without this index that is a scan
    # of every slot (1,000,000 at 100k images x 10 reads).
    "CREATE INDEX read_slots_read ON read_slots(read_id) WHERE read_id IS NOT NULL",
]

def _no_replace(table: str, keys: str) -> str:
    """A trigger refusing an INSERT that would collide with a stored row of `table` on `keys` (an
    SQL condition over NEW). INSERT OR REPLACE deletes the old row without firing the DELETE
    trigger (SQLite fires it only with recursive_triggers on), so without this an SQL client could
    rewrite a read by replacing it."""
    return (f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
            f"WHEN EXISTS (SELECT 1 FROM {table} o WHERE {keys}) "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: REPLACE refused'); END")


M0008_NO_REPLACE = [
    *[_no_replace(t, "o.rowid = NEW.rowid") for t in ("reads", "adjudications", "audit_log", "quality_overrides",
                                                      "check2_results", "crop_corrections")],
    _no_replace("range_tables", "o.version = NEW.version OR o.rowid = NEW.rowid"),
    _no_replace("model_runs", "o.rowid = NEW.rowid OR o.name = NEW.name OR o.predictions_sha256 = NEW.predictions_sha256"),
    _no_replace("model_predictions", "o.rowid = NEW.rowid OR (o.run_id = NEW.run_id AND o.row = NEW.row)"),
]

M0009_SESSIONS = [
    # Server-side sign-in sessions: the browser holds a random token in an HttpOnly cookie; only its
    # SHA-256 is stored, so a copy of the database signs no one in. A session ends at its absolute
    # expiry, after idling past the idle limit, or when revoked (sign-out, sign-out everywhere,
    # password reset, deactivation). Mutable by nature (last_seen moves); every start and end is
    # in the audit log.
    """CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        token_sha256 TEXT NOT NULL UNIQUE,
        user_id INTEGER NOT NULL REFERENCES users(id),
        created_at TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        revoked_at TEXT,
        revoked_why TEXT,
        client TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX sessions_user ON sessions(user_id) WHERE revoked_at IS NULL",
    # Sign-in throttling counts failures per name from the audit log.
    "CREATE INDEX audit_action_entity ON audit_log(action, entity_id, at)",
]

M0010_CHECK1_POLICY = [
    # The number of reads an image's check 1 needs, fixed per image: changing the project setting
    # applies to images whose check 1 is not complete and never reopens a finished one. An image
    # inserted without it takes the setting in force (or the default, 2).
    "ALTER TABLE images ADD COLUMN reads_required INTEGER CHECK (reads_required IS NULL OR reads_required >= 1)",
    "UPDATE images SET reads_required = coalesce((SELECT CAST(value AS INTEGER) FROM settings "
    "WHERE key = 'reads_per_image'), 2)",
    "CREATE TRIGGER images_reads_required AFTER INSERT ON images WHEN NEW.reads_required IS NULL BEGIN "
    "UPDATE images SET reads_required = coalesce((SELECT CAST(value AS INTEGER) FROM settings "
    "WHERE key = 'reads_per_image'), 2) WHERE id = NEW.id; END",
    # When the slot's holder was handed the image: no read is taken before the minimum dwell.
    "ALTER TABLE read_slots ADD COLUMN claimed_at TEXT",
    # How long the browser had shown the image when the key was pressed (measured in the browser).
    "ALTER TABLE reads ADD COLUMN shown_ms INTEGER",
    "ALTER TABLE adjudications ADD COLUMN shown_ms INTEGER",
    # An adjudicator's undo of their decision: a new event, the decision itself stays.
    """CREATE TABLE adjudication_undos (
        id INTEGER PRIMARY KEY,
        adjudication_id INTEGER NOT NULL UNIQUE REFERENCES adjudications(id),
        adjudicator_id INTEGER NOT NULL REFERENCES users(id),
        at TEXT NOT NULL)""",
    *_append_only("adjudication_undos"),
    _no_replace("adjudication_undos", "o.rowid = NEW.rowid OR o.adjudication_id = NEW.adjudication_id"),
    # A reader's own reads and undos, counted from the index alone (the Read page's progress).
    "CREATE INDEX reads_reader_kind ON reads(reader_id, kind)",
    # The events that count, written once here instead of in every query.
    "CREATE VIEW effective_reads AS SELECT r.* FROM reads r WHERE r.kind = 'read' "
    "AND NOT EXISTS (SELECT 1 FROM reads u WHERE u.supersedes = r.id)",
    "CREATE VIEW effective_adjudications AS SELECT a.* FROM adjudications a "
    "WHERE NOT EXISTS (SELECT 1 FROM adjudication_undos u WHERE u.adjudication_id = a.id)",
]

M0012_LANDMARK_CORRECTIONS = [
    # A coordinator's or adjudicator's correction of an image's 68 landmarks: the whole set after
    # the edit and the set it replaced, in full-resolution pixels of the stored original (EXIF
    # orientation applied). Append-only like the reads; the latest correction of an image wins.
    """CREATE TABLE landmark_corrections (
        id INTEGER PRIMARY KEY,
        image_id INTEGER NOT NULL REFERENCES images(id),
        points TEXT NOT NULL,
        previous TEXT NOT NULL,
        moved TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        actor TEXT NOT NULL,
        at TEXT NOT NULL)""",
    "CREATE INDEX landmark_corrections_image ON landmark_corrections(image_id)",
    *_append_only("landmark_corrections"),
    _no_replace("landmark_corrections", "o.rowid = NEW.rowid"),
    # A measurement of a corrected image holds the corrected points (and the indices computed from
    # them); dlib's own points stay beside them, and the correction it reflects.
    "ALTER TABLE measurements ADD COLUMN correction_id INTEGER REFERENCES landmark_corrections(id)",
    "ALTER TABLE measurements ADD COLUMN auto_points TEXT",
]

M0013_PREDICTION_SUBJECTS = [
    # The trainer's predictions.csv names each image's hashed subject (the export's subject_hash)
    # and source (issue 15): the agreement audit resamples a model's test images by subject, as it
    # does the reads. Both stay empty for runs evaluated before.
    "ALTER TABLE model_predictions ADD COLUMN subject_hash TEXT",
    # The trainer's own demo export says "synthetic"; a project's exports say hospital or mobile.
    "ALTER TABLE model_predictions ADD COLUMN source TEXT CHECK (source IS NULL OR length(source) BETWEEN 1 AND 40)",
]

# A slot's place in the reading order: a fixed, well-spread number per (image, slot) (Knuth's
# multiplicative hash), so one subject's images lie far apart; each reader walks it from a start
# of their own (labeling/workflow/queue.py).
_SHUFFLE = "(({t}.image_id * 2654435761) + ({t}.slot * 40503)) % 4294967296"

M0014_READING_ORDER = [
    "ALTER TABLE read_slots ADD COLUMN shuffle INTEGER",
    f"UPDATE read_slots SET shuffle = {_SHUFFLE.format(t='read_slots')}",
    "CREATE TRIGGER read_slots_shuffle AFTER INSERT ON read_slots WHEN NEW.shuffle IS NULL BEGIN "
    f"UPDATE read_slots SET shuffle = {_SHUFFLE.format(t='NEW')} WHERE image_id = NEW.image_id AND slot = NEW.slot; END",
    "CREATE INDEX read_slots_order ON read_slots(shuffle) WHERE read_id IS NULL",
    # The reader's last read, newest first (the subject not to show again right away).
    "CREATE INDEX reads_reader_latest ON reads(reader_id, id)",
]

M0015_READER_QC = [
    # Gold images: final-labelled images a coordinator marks (or unmarks) for readers' quality
    # control; append-only, the latest mark of an image wins.
    """CREATE TABLE gold_marks (
        id INTEGER PRIMARY KEY,
        image_id INTEGER NOT NULL REFERENCES images(id),
        gold INTEGER NOT NULL CHECK (gold IN (0, 1)),
        actor TEXT NOT NULL,
        at TEXT NOT NULL)""",
    "CREATE INDEX gold_marks_image ON gold_marks(image_id)",
    *_append_only("gold_marks"),
    _no_replace("gold_marks", "o.rowid = NEW.rowid"),
    # Quality-control items in a reader's queue: a mirror item (a horizontally flipped copy of an
    # image the reader graded earlier) or a gold item. The queue of them is mutable like read_slots
    # (leases come and go); the answers are append-only events of their own, never reads.
    """CREATE TABLE qc_items (
        id INTEGER PRIMARY KEY,
        reader_id INTEGER NOT NULL REFERENCES users(id),
        kind TEXT NOT NULL CHECK (kind IN ('mirror', 'gold')),
        image_id INTEGER NOT NULL REFERENCES images(id),
        created_at TEXT NOT NULL,
        claimed_at TEXT,
        lease_expires TEXT,
        UNIQUE (reader_id, kind, image_id))""",
    "CREATE INDEX qc_items_held ON qc_items(reader_id, lease_expires)",
    """CREATE TABLE qc_answers (
        id INTEGER PRIMARY KEY,
        qc_item_id INTEGER NOT NULL REFERENCES qc_items(id),
        reader_id INTEGER NOT NULL REFERENCES users(id),
        label TEXT CHECK (label IS NULL OR label IN ('N', 'L1', 'L2', 'L3', 'R1', 'R2', 'R3')),
        cannot_grade TEXT,
        kind TEXT NOT NULL DEFAULT 'answer' CHECK (kind IN ('answer', 'undo')),
        supersedes INTEGER REFERENCES qc_answers(id),
        started_at TEXT,
        submitted_at TEXT NOT NULL,
        duration_ms INTEGER,
        shown_ms INTEGER,
        simulated INTEGER NOT NULL DEFAULT 0,
        CHECK ((kind = 'undo') OR (label IS NOT NULL) <> (cannot_grade IS NOT NULL)))""",
    "CREATE INDEX qc_answers_item ON qc_answers(qc_item_id)",
    "CREATE INDEX qc_answers_reader ON qc_answers(reader_id, id)",
    *_append_only("qc_answers"),
    _no_replace("qc_answers", "o.rowid = NEW.rowid"),
    "CREATE VIEW effective_qc_answers AS SELECT q.* FROM qc_answers q WHERE q.kind = 'answer' "
    "AND NOT EXISTS (SELECT 1 FROM qc_answers u WHERE u.supersedes = q.id)",
]

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "core tables and append-only triggers", M0001_CORE),
    (2, "asymmetry measurements and quality overrides", M0002_MEASUREMENTS),
    (3, "read queue, range tables and check-2 results", M0003_WORKFLOW),
    (4, "crop box corrections", M0004_CROP_CORRECTIONS),
    (5, "imported trainer runs and their predictions", M0005_PREDICTIONS),
    (6, "per-image read summary kept by a trigger", M0006_READ_SUMMARY),
    (7, "index of the read slots by read", M0007_SLOT_BY_READ),
    (8, "append-only tables refuse INSERT OR REPLACE too", M0008_NO_REPLACE),
    (9, "server-side sign-in sessions", M0009_SESSIONS),
    (10, "per-image read requirement, dwell times, adjudication undo, effective-event views", M0010_CHECK1_POLICY),
    (12, "landmark corrections by hand (append-only)", M0012_LANDMARK_CORRECTIONS),
    (13, "predictions name their hashed subject and source", M0013_PREDICTION_SUBJECTS),
    (14, "reading order: each slot's place, for readers' interleaved queues", M0014_READING_ORDER),
    (15, "reader quality control: gold marks, QC items and their answers", M0015_READER_QC),
]


def applied(db: Database) -> list[int]:
    """Return the numbers of the migrations already applied to `db`."""
    if "_migrations" not in db.table_names():
        return []
    return [r[0] for r in db.execute("SELECT number FROM _migrations ORDER BY number")]


def migrations_for(db) -> list[tuple[int, str, list[str]]]:
    """The migrations of `db`'s backend: SQLite's numbered list, or PostgreSQL's (db/schema_pg.py)."""
    if getattr(db, "backend", "sqlite") == "postgresql":
        from db.schema_pg import PG_MIGRATIONS

        return PG_MIGRATIONS
    return MIGRATIONS


def migrate(db: Database) -> list[int]:
    """Apply every pending migration in order; return the numbers applied by this call."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (number INTEGER PRIMARY KEY, name TEXT NOT NULL, "
               "applied_at TEXT NOT NULL)")
    done_now = []
    for number, name, statements in migrations_for(db):
        if number in applied(db):
            continue
        with transaction(db) as conn:
            # Re-check under the write lock: another process may have applied it meanwhile.
            if conn.execute("SELECT 1 FROM _migrations WHERE number = ?", (number,)).fetchone():
                continue
            for sql in statements:
                conn.execute(sql)
            conn.execute("INSERT INTO _migrations (number, name, applied_at) VALUES (?, ?, ?)",
                         (number, name, now()))
        done_now.append(number)
    return done_now
