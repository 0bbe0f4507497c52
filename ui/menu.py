"""The page table: which page needs which action. app.py builds st.navigation from it."""
from __future__ import annotations

from ui.home import home_page
from ui.import_page import import_page
from ui.users_page import users_page

# (page function, title, icon, url path, action the page needs)
PAGES = [
    (home_page, "Home", ":material/home:", "home", "status.view"),
    (import_page, "Import", ":material/upload:", "import", "import"),
    (users_page, "Users", ":material/group:", "users", "users.manage"),
]
