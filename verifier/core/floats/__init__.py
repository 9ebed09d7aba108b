"""Floating-point formats and points: the dtype table and exact rounding to it, decimal
number syntax, and the points of a check (given, sampled, rounded once).

The lowest room of the core: it imports nothing else of it.
"""
