"""Celery's Redis transport with one Redis client per channel for its own bookkeeping.

kombu's Redis channel builds a new ``redis.Redis`` client for every message it takes and every
acknowledgement (``Channel.conn_or_acquire``), to run two or three commands on its pool. Under a
refresh wave that construction was 2.5 % of a worker's GIL time (py-spy, docs/performance.md).
A client holds no connection of its own and is safe to share between threads: it borrows one
from the pool per command. So the channel keeps the client it built, for as long as its pool
lives; when kombu replaces the pool (a lost connection), the next call builds a new client on
the new pool. Only the synchronous client is kept: the asynchronous one, for BRPOP and
publishing, is kombu's own business as before.
"""

from __future__ import annotations

from kombu.transport import redis


class Channel(redis.Channel):
    _kept_client = None

    def _create_client(self, asynchronous=False):
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._kept_client
        if client is None or client.connection_pool is not self.pool:
            client = self._kept_client = super()._create_client()
        return client


class Transport(redis.Transport):
    Channel = Channel
