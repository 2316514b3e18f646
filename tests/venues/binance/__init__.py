"""Tests of the Binance venue."""
