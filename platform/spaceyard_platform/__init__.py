"""Spaceyard platform: the control plane (Hub-compatible API, git server, web pages) and the gateway."""
