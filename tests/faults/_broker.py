"""Point this process's Celery (the web side: views and services sending checks) at another
broker, e.g. one that is down, and back."""

from __future__ import annotations

from contextlib import contextmanager

from bitsgap_clone.embedded_redis import free_port


def unused_broker_url() -> str:
    """A Redis URL on a loopback port nothing listens on: a broker that is down."""
    return f"redis://127.0.0.1:{free_port()}/0"


def _use(url: str) -> None:
    from bitsgap_clone.celery import app

    # Dropped, not closed: kombu keeps one pool per broker URL for the whole process, and the
    # previous URL's pool is taken up again on the way back.
    app._pool = None  # rebuilt from broker_url on next use
    app.amqp._producer_pool = None
    app.conf.broker_url = url


@contextmanager
def web_broker(url: str):
    """While inside, `.delay()` in this process publishes to `url`."""
    from bitsgap_clone.celery import app

    previous = app.conf.broker_url
    _use(url)
    try:
        yield url
    finally:
        _use(previous)
