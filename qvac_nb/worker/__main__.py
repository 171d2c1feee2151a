"""Entry point of an engine worker process: `python -m qvac_nb.worker ADDRESS`."""

import sys

from .server import main

main(sys.argv)
