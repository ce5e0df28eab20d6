"""``python -m goodfit``: the ``goodfit`` command (also what ``torchrun -m goodfit`` runs).

A thin dispatcher: the application is imported by name at run time, so this module sits outside
the layers (``goodfit.app.cli.main`` does the work).
"""

import importlib
import sys

if __name__ == "__main__":
    sys.exit(importlib.import_module("goodfit.app.cli").main())
