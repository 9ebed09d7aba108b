"""The torch program: translation of an expression to torch, and autograd on it along the
check's paths.

Imports from the core: ``floats``, ``expression``.
"""
