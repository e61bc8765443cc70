"""`python -m metainf.cli`: the `metainf` command without its console script."""

import sys

from metainf.cli import main

sys.exit(main())
