"""Spaceyard builder: turns a Space commit into something runnable, and keeps the logs of it.

Public surface: :mod:`spaceyard_builder.api` (requests, results, the BuildEngine contract),
:mod:`spaceyard_builder.spaceconfig` (README front matter), :mod:`spaceyard_builder.logs` (LogStore).
"""
