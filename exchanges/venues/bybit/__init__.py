"""Bybit (V5 REST, api.bybit.com and its regional sites): signing, errors, limits, client and venue."""
