"""Fails on import, for the command-line tests."""

raise RuntimeError("broken-app-import-failure")
