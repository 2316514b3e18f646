"""Tests of the OKX venue."""
