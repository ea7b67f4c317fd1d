"""``python -m driver``: the command line (driver.commands)."""

import sys

from driver.commands import main

sys.exit(main())
