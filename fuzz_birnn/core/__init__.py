"""The core: one case, and checking one call of a candidate on it.

What a case is (:mod:`.case`), the working layout and the way back to the caller's
(:mod:`.layout`), the float64 cell equations (:mod:`.reference`), the stack rebuilt from
unidirectional torch modules (:mod:`.decomposition`), the tolerance model and the comparison
(:mod:`.compare`), what a case is checked against (:mod:`.evaluation`), what a check ends in
(:mod:`.outcomes`), and the check itself (:mod:`.check`). Imports only :mod:`fuzz_birnn.portable`
from the rest of the package.
"""
