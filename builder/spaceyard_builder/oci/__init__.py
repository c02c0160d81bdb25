"""Daemonless OCI images: a registry client (:mod:`.registry`) and reproducible layers (:mod:`.layers`)."""
