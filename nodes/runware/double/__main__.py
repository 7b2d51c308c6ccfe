"""``python -m nodes.runware.double``: run the test double standalone."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
