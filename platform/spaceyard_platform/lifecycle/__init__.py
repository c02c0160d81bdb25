"""A Space's lifecycle: the stage machine (:mod:`.stages`), and the deployer split by job (build handling,
start/swap/retire, sleep/wake, restart recovery) over one per-Space state (:mod:`.state`)."""
