"""Expressions: the safe parser, the function catalogue (built-in, special, custom), literals,
symbolic derivatives and the cost of an expression.

Imports from the core: ``floats``. Torch-free: the API's parser processes run it.
"""
