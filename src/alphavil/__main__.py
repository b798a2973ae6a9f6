"""``python -m alphavil ...`` (and ``torchrun -m alphavil run CONFIG``): the command line."""

import sys

from alphavil.cli import main

sys.exit(main())
