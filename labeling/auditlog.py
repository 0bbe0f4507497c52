"""Reading the audit log (for auditors): filter, and export as CSV-safe rows."""
from __future__ import annotations

import pandas as pd
import sqlite_utils

from labeling.accounts.permissions import require
from labeling.accounts.users import User


def audit_events(db: sqlite_utils.Database, viewer: User, *, actor: str | None = None, action: str | None = None,
                 since: str | None = None, until: str | None = None, text: str | None = None,
                 limit: int = 10_000) -> pd.DataFrame:
    """Return audit events, newest first, filtered; only for users allowed 'audit.view'."""
    require(viewer, "audit.view")
    where, params = [], []
    if actor:
        where.append("actor = ?")
        params.append(actor)
    if action:
        where.append("action LIKE ?")
        params.append(action.rstrip("*") + "%")
    if since:
        where.append("at >= ?")
        params.append(since)
    if until:
        where.append("at < ?")
        params.append(until)
    if text:
        where.append("(detail LIKE ? OR entity_id LIKE ?)")
        params += [f"%{text}%", f"%{text}%"]
    sql = ("SELECT id, at, actor, action, entity, entity_id, detail FROM audit_log"
           + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?")
    return db.frame(sql, [*params, int(limit)])


def audit_facets(db: sqlite_utils.Database, viewer: User) -> tuple[list[str], list[str]]:
    """Return the distinct actors and actions, for filter menus."""
    require(viewer, "audit.view")
    actors = [r[0] for r in db.execute("SELECT DISTINCT actor FROM audit_log ORDER BY actor")]
    actions = [r[0] for r in db.execute("SELECT DISTINCT action FROM audit_log ORDER BY action")]
    return actors, actions
