"""``python -m robopg``: the command line, as the ``robopg`` script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
