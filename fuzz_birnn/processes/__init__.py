"""Running code in child processes without losing the parent: a case in a forked child that may
crash or hang (:mod:`.forked`), a worker that dies with its parent (:mod:`.lifeline`), a child's
console output kept apart (:mod:`.capture`)."""
