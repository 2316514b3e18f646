"""Loaded with `-p` before pytest-django reads the settings (see pyproject.toml).

Sets the test environment and, when REDIS_URL is unset, starts the embedded redis-server so
a fresh machine needs no Redis. CI sets REDIS_URL and DATABASE_URL to its real services.
"""

from __future__ import annotations

import atexit
import os

os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
# A valid Fernet key for tests only (32 url-safe base64 bytes are not required: HKDF derives one).
os.environ.setdefault("FERNET_KEYS", "test-fernet-key-1")
os.environ.setdefault("KEY_FINGERPRINT_SECRET", "test-fingerprint-secret")
os.environ.setdefault("SESSION_COOKIE_SECURE", "0")
os.environ.setdefault("CSRF_COOKIE_SECURE", "0")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("ACCOUNT_EMAIL_VERIFICATION", "optional")
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
# The HTX a test talks to is always the sandbox; a test that forgets to say so fails here.
os.environ.setdefault("HTX_API_URL", "http://127.0.0.1:9")

if not os.environ.get("REDIS_URL"):
    from bitsgap_clone.embedded_redis import start

    _process, os.environ["REDIS_URL"] = start()
    os.environ["TEST_REDIS_EMBEDDED"] = "1"

    def _stop() -> None:
        _process.terminate()
        _process.wait(10)

    atexit.register(_stop)
