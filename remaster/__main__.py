import sys

from remaster.cli import main

sys.exit(main())
