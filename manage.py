#!/usr/bin/env python
import os
import subprocess
import sys
from pathlib import Path

# The exchange sandboxes need none of the dashboard's settings (secrets, database, broker).
SANDBOX_COMMANDS = {"sandboxes", "htx_sandbox"}
VENV_PYTHON = Path(__file__).resolve().parent / ".venv" / "bin" / "python"


def use_project_venv() -> None:
    """Run under the project's .venv (created by `make install`) when started by another
    Python, so `python3 manage.py ...` works as the README shows, even from a fresh clone."""
    try:
        import django  # noqa: F401
    except ImportError:
        pass
    else:
        return
    if Path(sys.prefix).resolve() == VENV_PYTHON.parent.parent.resolve():
        sys.exit("Django is missing from .venv: run `make install`.")
    if not VENV_PYTHON.exists():
        print(
            "First run: creating .venv and installing the pinned requirements (make install)...",
            file=sys.stderr,
        )
        if subprocess.run(
            ["make", "--no-print-directory", "install"], cwd=VENV_PYTHON.parent.parent.parent
        ).returncode:
            sys.exit("`make install` failed; see above.")
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])


if __name__ == "__main__":
    use_project_venv()
    sandbox_only = len(sys.argv) > 1 and sys.argv[1] in SANDBOX_COMMANDS
    os.environ.setdefault(
        "DJANGO_SETTINGS_MODULE",
        "bitsgap_clone.sandbox_settings" if sandbox_only else "bitsgap_clone.settings",
    )
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
