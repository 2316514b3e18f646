"""Binance (spot, api.binance.com): signing, errors, limits, client and venue."""
