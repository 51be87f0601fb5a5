"""``python -m fuzz_birnn run ...``, the same as the ``fuzz-birnn`` command."""

import sys

from fuzz_birnn.cli import main

sys.exit(main())
