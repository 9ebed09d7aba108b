"""``python -m verifier``: the ``derivcheck`` command line."""

from verifier.cli import main

main()
