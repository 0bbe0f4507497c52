"""The page table: which page needs which action. app.py builds st.navigation from it."""
from __future__ import annotations

from ui.account_page import account_page
from ui.adjudicate_page import adjudicate_page
from ui.agreement_page import agreement_page
from ui.audit_page import audit_page
from ui.export_page import export_page
from ui.home import home_page
from ui.import_page import import_page
from ui.prediagnosis_page import prediagnosis_page
from ui.read_page import read_page
from ui.settings_page import settings_page
from ui.status_page import status_page
from ui.users_page import users_page

# (page function, title, icon, url path, action the page needs)
PAGES = [
    (home_page, "Home", ":material/home:", "home", "status.view"),
    (read_page, "Read", ":material/visibility:", "read", "read.submit"),
    (adjudicate_page, "Adjudicate", ":material/gavel:", "adjudicate", "adjudicate"),
    (status_page, "Status", ":material/monitoring:", "status", "status.view"),
    (audit_page, "Audit", ":material/history:", "audit", "audit.view"),
    (settings_page, "Settings", ":material/settings:", "settings", "settings.manage"),
    (agreement_page, "Agreement", ":material/fact_check:", "agreement", "agreement.view"),
    (prediagnosis_page, "Prediagnosis", ":material/face:", "prediagnosis", "prediagnosis.view"),
    (import_page, "Import", ":material/upload:", "import", "import"),
    (export_page, "Export", ":material/output:", "export", "export"),
    (users_page, "Users", ":material/group:", "users", "users.manage"),
    (account_page, "My account", ":material/person:", "account", "account.own"),
]
