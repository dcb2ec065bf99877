"""``python -m payprotocol``: the same as the ``payprotocol`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
