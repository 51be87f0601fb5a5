"""What a run leaves for people and machines: a report folder per failure (:mod:`.reports`),
``run.json`` and the console summary (:mod:`.run_record`), JUnit XML (:mod:`.junit`), self-contained
HTML pages (:mod:`.pages`, drawn by :mod:`.pictures`), each written whole (:mod:`.files`)."""
