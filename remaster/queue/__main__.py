"""`python -m remaster.queue ACTION ...`, the same as `remaster queue ACTION ...`."""

import sys

from remaster.queue.command import main

sys.exit(main())
