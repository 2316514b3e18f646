"""The venue kit: what every exchange folder builds on, and the protocol the worker speaks.

- ``errors``: one error family (``VenueError``) with neutral kinds, permanent or transient;
- ``types``: neutral key facts, wallet lines and balance reads;
- ``venue``: the ``Venue`` base class (what a venue declares) and the client protocol;
- ``transport``: keep-alive HTTP shared by every client of a process;
- ``gate``: admission in Redis (a cap on requests in flight, and each venue's limits as data);
- ``sandbox``: the HTTP server, faults, stats and control hooks every venue's sandbox shares.

Standard library (and redis for the gate) only: no Django.
"""
