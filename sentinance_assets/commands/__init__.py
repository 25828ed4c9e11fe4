"""Sub-commands of the ``sentinance`` CLI that live outside ``cli.py``."""
