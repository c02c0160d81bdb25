"""When a fork behaves like a cold start: the decision table, as a pure function."""

from __future__ import annotations

from spaceyard_runtime.zygote import fork_blockers

ZYGOTE = {"PATH": "/env/bin:/usr/bin", "HOME": "/z/home", "TMPDIR": "/z/tmp", "LANG": "C.UTF-8"}
READS = {
    "HOME": ["/z/home", ["fsspec.config", "huggingface_hub.constants", "sysconfig", "tqdm.utils"]],
    "TMPDIR": ["/z/tmp", ["tempfile"]],
    "HF_ENDPOINT": [None, ["huggingface_hub.constants"]],
    "GRADIO_SERVER_PORT": [None, ["gradio.node_server"]],
    "SSL_CERT_FILE": [None, ["httpx._config"]],
    "TQDM_MININTERVAL": [None, ["tqdm.utils"]],
}
ITERATED = ["fsspec.config", "tqdm.utils", "urllib.request"]


def child(**extra: str) -> dict[str, str]:
    app = {"HOME": "/s/home", "TMPDIR": "/s/tmp", "PYTHONPATH": "/app", "GRADIO_SERVER_PORT": "7861"}
    return {**ZYGOTE, **app, **extra}


def test_a_usual_app_environment_forks() -> None:
    env = child(SPACE_ID="a/b", MY_SECRET="x", HF_ENDPOINT="http://hub", FSSPEC_FOO="1", HTTP_PROXY_X="y")
    assert fork_blockers(ZYGOTE, env, READS, ITERATED) == []


def test_variables_read_at_startup_block() -> None:
    for key in ("PYTHONHASHSEED", "LD_PRELOAD", "OMP_NUM_THREADS", "LC_ALL", "MALLOC_ARENA_MAX"):
        assert fork_blockers(ZYGOTE, child(**{key: "1"}), READS, ITERATED) == [f"{key} is read when Python starts"]


def test_variables_kept_by_unrefreshed_modules_block() -> None:
    assert fork_blockers(ZYGOTE, child(SSL_CERT_FILE="/ca.pem"), READS, ITERATED) == [
        "SSL_CERT_FILE is read by httpx._config at import"
    ]
    assert fork_blockers(ZYGOTE, child(TQDM_MININTERVAL="5"), READS, ITERATED) == [
        "TQDM_MININTERVAL is read by tqdm.utils at import"
    ]
    assert fork_blockers(ZYGOTE, child(https_proxy="http://proxy"), READS, ITERATED) == [
        "https_proxy is read by urllib.request at import"
    ]


def test_an_unknown_module_iterating_the_environment_blocks_any_difference() -> None:
    blockers = fork_blockers(ZYGOTE, child(SPACE_ID="a/b"), READS, [*ITERATED, "somelib.config"])
    assert "SPACE_ID is read by somelib.config at import" in blockers


def test_nothing_differs_nothing_blocks() -> None:
    assert fork_blockers(ZYGOTE, dict(ZYGOTE), READS, ITERATED) == []
