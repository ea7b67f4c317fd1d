import sys

from driver.commands import main

sys.exit(main())
