"""Bybit venue tests."""
