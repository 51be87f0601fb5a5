"""``fuzz-birnn run``'s search: every (property, mode) search in fair slices (:mod:`.scheduler`),
run by worker processes (:mod:`.engine`) that remember what they found (:mod:`.database`), tell one
fault from another (:mod:`.signature`), keep a write-ahead record of the case in flight
(:mod:`.writeahead`), and shrink crashes and hangs in child processes (:mod:`.reducer`)."""
