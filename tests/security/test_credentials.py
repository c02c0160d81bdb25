"""No credentials reach apps: the hostile probe Space reports every header it was ever sent.

The gateway uses ``Authorization``, ``x-hf-authorization`` and the platform's cookies (session, sign-in
CSRF, app access, version stamp) for the access decision and strips them for every Space, public or
private, on both addresses; ``gradio_client`` keeps working, on the path form and by Space id.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from tests.security.origin_support import PRIVATE_PROBE, PROBE, deploy, seen
from tests.support import Server

pytestmark = [pytest.mark.slow]

PLATFORM_COOKIES = ("spaceyard_session", "spaceyard_app_access", "spaceyard_login_csrf", "spaceyard_version")
SEEN_BY_GRADIO_NOTHING = {"authorization": None, "x-hf-authorization": None, "cookie": None}


@pytest.fixture(scope="module")
def deployed(server: Server) -> None:
    deploy(server)


def assert_no_credentials_seen(server: Server, space_id: str) -> None:
    report = seen(server, space_id)
    assert report["requests"] > 0
    for entry in report["credentials"]:
        assert "authorization" not in entry and "x-hf-authorization" not in entry, entry
        cookie = entry.get("cookie", "")
        assert not [name for name in PLATFORM_COOKIES if name in cookie], entry
        assert server.token not in json.dumps(entry)


@pytest.mark.parametrize("space_id", [PROBE, PRIVATE_PROBE])
def test_no_token_or_platform_cookie_reaches_the_app(server: Server, deployed: None, space_id: str) -> None:
    everything = {
        "Authorization": f"Bearer {server.token}",
        "x-hf-authorization": f"Bearer {server.token}",
        "Cookie": "spaceyard_session=s1; theme=dark; spaceyard_login_csrf=c; spaceyard_app_access=a; "
        "spaceyard_version=v",
    }
    sub = space_id.replace("/", "-")
    for url, extra in (
        (f"{server.url}/apps/{space_id}/probe/echo", {}),
        (f"{server.url}/probe/echo", {"Host": f"{sub}.localhost:{server.port}"}),
    ):
        r = httpx.get(url, headers={**everything, **extra}, timeout=30)
        assert r.status_code == 200, (url, r.text)
        echoed = r.json()
        assert echoed["cookies"] == {"theme": "dark"}  # the app's own cookies pass, nothing else
        assert not {"authorization", "x-hf-authorization"} & set(echoed["headers"])
        assert server.token not in r.text
    assert_no_credentials_seen(server, space_id)


def test_gradio_client_on_the_path_form_with_a_token(server: Server, deployed: None) -> None:
    """The token opens the private Space, and Gradio's own request object shows the app nothing of it."""
    public = Client(f"{server.url}/apps/{PROBE}/", token=server.token, verbose=False)
    assert json.loads(public.predict(api_name="/whoami")) == SEEN_BY_GRADIO_NOTHING
    private = Client(f"{server.url}/apps/{PRIVATE_PROBE}/", token=server.token, verbose=False)
    assert json.loads(private.predict(api_name="/whoami")) == SEEN_BY_GRADIO_NOTHING
    with pytest.raises(Exception):  # noqa: B017 - gradio_client raises its own errors for a 404
        Client(f"{server.url}/apps/{PRIVATE_PROBE}/", verbose=False)
    assert_no_credentials_seen(server, PROBE)
    assert_no_credentials_seen(server, PRIVATE_PROBE)


def test_gradio_client_by_space_id_with_hf_token(server: Server, deployed: None, tmp_path: Path) -> None:
    script = (
        "import json\n"
        "from gradio_client import Client\n"
        "out = {}\n"
        f"for space in ({PROBE!r}, {PRIVATE_PROBE!r}):\n"
        "    out[space] = json.loads(Client(space, verbose=False).predict(api_name='/whoami'))\n"
        "print(json.dumps(out))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "SPACEYARD_"))}
    env.update(
        {
            "HF_ENDPOINT": server.url,
            "HF_HOME": str(tmp_path / "hf-home"),
            "HF_TOKEN": server.token,
            "GRADIO_ANALYTICS_ENABLED": "False",
        }
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {PROBE: SEEN_BY_GRADIO_NOTHING, PRIVATE_PROBE: SEEN_BY_GRADIO_NOTHING}
    assert_no_credentials_seen(server, PROBE)
    assert_no_credentials_seen(server, PRIVATE_PROBE)
