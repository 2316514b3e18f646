"""The session engine (SESSION_ENGINE): Django's database store, remembering the expiry of the
row it loaded, so SessionLimitsMiddleware can renew a session whose server-side expiry lags
without saving the session on every request."""

from __future__ import annotations

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore


class SessionStore(DatabaseSessionStore):
    # The expire_date of the row loaded in this request; None before loading or when no live row.
    stored_expiry = None

    def _get_session_from_db(self):
        row = super()._get_session_from_db()
        self.stored_expiry = row.expire_date if row is not None else None
        return row
