"""`python -m remaster.scaleout.queue ACTION ...`, the same as `remaster queue ACTION ...`."""

import sys

from remaster.commands.queue import main

sys.exit(main())
