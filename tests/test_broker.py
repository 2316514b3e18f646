"""bitsgap_clone.broker: Celery's Redis transport keeps one client per channel for its
bookkeeping (taking and acknowledging messages) instead of building one per message."""

from __future__ import annotations

from django.conf import settings
from kombu import Connection

from bitsgap_clone.broker import Transport
from bitsgap_clone.celery import app


def test_celery_uses_the_transport_for_a_redis_url():
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    with app.connection_for_write() as connection:
        assert connection.transport_cls == "bitsgap_clone.broker:Transport"
        assert isinstance(connection.transport, Transport)


def test_a_channel_keeps_its_client_until_its_pool_is_replaced():
    with Connection(settings.CELERY_BROKER_URL, transport=Transport) as connection:
        channel = connection.default_channel
        first = channel._create_client()
        assert channel._create_client() is first and first.ping()
        # kombu drops its pools when a connection is lost; the next client is on the new pool.
        channel._pool = None
        second = channel._create_client()
        assert second is not first and second.connection_pool is channel.pool and second.ping()
        # The asynchronous client (BRPOP, publishing) is still built by kombu each time.
        assert channel._create_client(asynchronous=True) is not channel._create_client(asynchronous=True)
