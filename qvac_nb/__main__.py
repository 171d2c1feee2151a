"""`python -m qvac_nb` is the `qvac-nb` command."""

import sys

from .cli import main

sys.exit(main())
