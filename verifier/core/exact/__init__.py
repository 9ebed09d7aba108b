"""Exact values: the certified (arb ball) evaluator, rational bounds, the reference table of a
check, and the sandbox process the symbolic side runs in.

Imports from the core: ``floats``, ``expression``.
"""
