"""``python -m glitchnet`` (and so ``torchrun ... -m glitchnet``): the ``glitchnet`` command."""

import sys

from .cli import main

sys.exit(main())
