"""The project's WSGI application with its static files served by Django, as `runserver` and
the tests' live server do. For benchmarks that drive a browser against gunicorn without a
reverse proxy in front (htmx and the CSS are static files). Not for production."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bitsgap_clone.settings")

from django.contrib.staticfiles.handlers import StaticFilesHandler  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

application = StaticFilesHandler(get_wsgi_application())
