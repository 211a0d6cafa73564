"""`python -m aimc ...` is the same as the `aimc` console script."""

import sys

from aimc.cli.app import main

sys.exit(main())
