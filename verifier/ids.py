"""How a job's id is written short: what the CLI and the pages print and what a prefix needs.

A job's short id is the first ``SHORT_ID_CHARS`` hex digits of its UUID (``job beb21642``); the
API resolves a prefix of at least that many digits to the one job it starts (``GET
/jobs?prefix=``), so every short id printed can be typed back.
"""

from __future__ import annotations

SHORT_ID_CHARS = 8
"""Hex digits of a short job id, and the fewest a job id prefix may have."""
