"""Venues: one folder per exchange (``htx/``, ...) and the kit they share (``kit/``).

A venue imports nothing of the project but ``exchanges.venues.kit``: no Django, no models, no
other venue. The dashboard finds venues through ``settings.VENUES`` (``exchanges.registry``).
See docs/adding-an-exchange.md.
"""
