"""Fixtures of the alert tests: the real receivers of tests.alerts.servers, on loopback."""

from __future__ import annotations

import pytest

from tests.alerts.servers import SmtpServer, WebhookServer


@pytest.fixture
def smtp_server():
    """A running `SmtpServer` (stop and start it to take the mail server down and up)."""
    with SmtpServer() as server:
        yield server


@pytest.fixture
def webhook_server():
    """A running `WebhookServer`; `webhook_server.url()` is a JSON webhook address."""
    with WebhookServer() as server:
        yield server
