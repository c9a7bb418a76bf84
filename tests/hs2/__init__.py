"""Helpers that build a hiveserver2 check for the HiveServer2 stub (fixtures: tests/hs2_fixtures.py)."""
