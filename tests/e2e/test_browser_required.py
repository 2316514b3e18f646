"""A machine without Chromium fails the browser tests instead of skipping them quietly."""

from __future__ import annotations

import pytest

from .conftest import require_chromium


@pytest.mark.parametrize("opted_out", [False, True])
def test_missing_chromium_fails_unless_explicitly_opted_out(monkeypatch, tmp_path, opted_out):
    if opted_out:
        monkeypatch.setenv("SKIP_BROWSER", "1")
    else:
        monkeypatch.delenv("SKIP_BROWSER", raising=False)
    outcome = pytest.skip.Exception if opted_out else pytest.fail.Exception
    with pytest.raises(outcome, match="Chromium not found"):
        require_chromium(str(tmp_path / "no-chromium"))
