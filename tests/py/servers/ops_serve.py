"""``pyparallel serve`` as a script (the production tests restart it)."""

import sys

from pyparallel.serve import main

sys.exit(main())
