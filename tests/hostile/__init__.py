"""Hostile inputs and faults against every front (UI, API, CLI, Python API); see conftest.py."""
