"""``python -m fuzz_birnn.cli ...`` (as before 0.2), the same as ``python -m fuzz_birnn``."""

import sys

from fuzz_birnn.cli import main

sys.exit(main())
