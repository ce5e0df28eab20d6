"""``python -m goodfit.app``: the ``goodfit`` command."""

import sys

from goodfit.app.cli import main

sys.exit(main())
