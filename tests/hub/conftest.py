"""Fixtures for driving the live ``server`` with the unmodified ``huggingface_hub`` client.

Users (made with ``spaceyard token create``, as an operator would): ``hubalice`` (write token, member
of organization ``hubacme``, plus a read token), ``hubbob`` (write token, no organization) and
``hubcarol`` (read token only), ``hubdave`` (write token, a *read* member of ``hubacme``).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from tests.support import Server

SPACEYARD = Path(sys.executable).parent / "spaceyard"


def cli_token(server: Server, user: str, role: str, org: str | None = None, org_role: str = "write") -> str:
    args = [str(SPACEYARD), "token", "create", "--user", user, "--role", role, "--name", f"{user}-{role}"]
    if org:
        args += ["--org", org, "--org-role", org_role]
    out = subprocess.run(args, env=server.env, capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class Users:
    alice: str
    alice_read: str
    bob: str
    carol_read: str
    dave: str


@pytest.fixture(scope="session")
def users(server: Server) -> Users:
    return Users(
        alice=cli_token(server, "hubalice", "write", org="hubacme"),
        alice_read=cli_token(server, "hubalice", "read"),
        bob=cli_token(server, "hubbob", "write"),
        carol_read=cli_token(server, "hubcarol", "read"),
        dave=cli_token(server, "hubdave", "write", org="hubacme", org_role="read"),
    )


def hf(server: Server, token: str | bool) -> HfApi:
    """The real client, pointed at the test server (``HF_ENDPOINT`` does the same for module-level calls)."""
    return HfApi(endpoint=server.url, token=token)


@pytest.fixture(scope="session")
def admin_api(server: Server) -> HfApi:
    return hf(server, server.token)


@pytest.fixture(scope="session")
def anon_api(server: Server) -> HfApi:
    return hf(server, False)
