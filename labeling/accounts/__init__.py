"""Who may do what: users and their roles, passwords, sign-in throttling, server-side sessions, the permission table."""
