from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_no_model_change_is_missing_a_migration():
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())


def _start_django(*, debug: bool, without: tuple[str, ...]) -> subprocess.CompletedProcess:
    """Set Django up in a fresh process, with some settings missing from the environment."""
    env = {k: v for k, v in os.environ.items() if k not in without}
    env.update(
        DEBUG="1" if debug else "0", DJANGO_SETTINGS_MODULE="bitsgap_clone.settings", ENV_FILE=os.devnull
    )
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("missing", ["SECRET_KEY", "FERNET_KEYS", "KEY_FINGERPRINT_SECRET"])
def test_production_refuses_to_start_without_its_secrets(missing):
    result = _start_django(debug=False, without=(missing,))
    assert result.returncode != 0
    assert f"Set the {missing} environment variable" in result.stderr


def test_development_starts_without_any_secret_configured():
    result = _start_django(debug=True, without=("SECRET_KEY", "FERNET_KEYS", "KEY_FINGERPRINT_SECRET"))
    assert result.returncode == 0, result.stderr
