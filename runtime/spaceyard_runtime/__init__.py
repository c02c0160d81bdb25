"""Spaceyard runtime: runs built Spaces (local processes, Docker containers, Kubernetes).

The public surface is :mod:`spaceyard_runtime.api`; backends are chosen by
``RuntimeSettings.runtime`` through :func:`spaceyard_runtime.factory.create_runtime`.
"""
