"""The exchanges offered by default: dotted paths to each venue's declaration. Adding an
exchange is its folder under ``exchanges/venues/`` plus one line here (``VENUES`` in the
environment overrides the list)."""

DEFAULT_VENUES = [
    "exchanges.venues.htx.venue.HTX",
    "exchanges.venues.binance.venue.BINANCE",
    "exchanges.venues.okx.venue.OKX",
    "exchanges.venues.bybit.venue.BYBIT",
]
