"""Settings for the exchange sandboxes alone (``manage.py sandboxes``, ``manage.py
htx_sandbox``). The sandboxes are local doubles of the exchanges' APIs: they need none of the
dashboard's secrets, database or broker, so they start as the README shows from a fresh clone
with no ``.env``. ``manage.py`` chooses this module for those commands unless
DJANGO_SETTINGS_MODULE says otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import environ

from bitsgap_clone.venues import DEFAULT_VENUES

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(os.environ.get("ENV_FILE", BASE_DIR / ".env"), overwrite=False)

VENUES = env.list("VENUES", default=DEFAULT_VENUES)
INSTALLED_APPS = ["exchanges"]
USE_TZ = True
