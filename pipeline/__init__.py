"""camloc: a reproducible benchmark of weakly-supervised localization with class activation maps.

Importing the package is cheap (no torch): the CLI loads each stage's module only when it runs.
"""

__version__ = "0.1.0"
