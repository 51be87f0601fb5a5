"""``python -m fuzz_birnn run ...``, the same as the ``fuzz-birnn`` command."""

import sys

from .cli import main

sys.exit(main())
