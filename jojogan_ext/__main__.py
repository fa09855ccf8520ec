"""Entry point of `python -m jojogan_ext`."""

import sys

from .cli import main

sys.exit(main())
