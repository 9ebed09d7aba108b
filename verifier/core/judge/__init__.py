"""Judging: tolerances, verdicts, the comparison with the exact values, the local audit,
conditioning and diagnosis (whose fault an error is), entries and the report.

Imports from the core: ``floats``, ``expression``, ``exact``, ``program``.
"""
