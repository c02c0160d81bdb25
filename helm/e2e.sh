#!/usr/bin/env bash
# End-to-end check of the Helm chart on your cluster (kind, k3s, a cloud cluster): the same path that
# tests/kubernetes/test_chart_on_cluster.py drives on helm/dev-cluster.sh.
#
#   REGISTRY=localhost:5001 helm/e2e.sh        # uses the current kubectl context
#
# 1. helm/images.sh builds the platform, PostgreSQL and Redis images (helm/Dockerfile) and pushes them
#    and the base of Space images to REGISTRY (skipped when the registry has them: content tags);
# 2. helm lint --strict + helm install (the in-chart PostgreSQL and Redis; the worker builds with the
#    oci engine and pushes Space images to REGISTRY);
# 3. through the platform Service (kubectl port-forward: no Ingress needed): create a Space, git push
#    sample_spaces/hello-gradio, watch BUILDING -> RUNNING, call it with gradio_client; push
#    sample_spaces/hello-docker to a Docker Space (buildah in the worker pod) -> RUNNING, /api/info; push an
#    app-only change while calling it without pause (zero failed calls across the rolling update),
#    sleep (0 replicas) and wake through the gateway, helm upgrade (the Space survives a new platform
#    pod), delete the Space (nothing left), helm uninstall (only the kept volumes + database Secret
#    are left; KEEP=1 leaves everything installed).
#
# Needs: docker, kubectl, helm (v3.8+ or v4), git, curl, python3 with gradio_client
# (pip install gradio_client); a default StorageClass (kind and k3s ship one); a registry the machine
# running this script can push to and the nodes can pull from (kind: https://kind.sigs.k8s.io/docs/user/local-registry/,
# REGISTRY=localhost:5001; k3s: a registries.yaml mirror), over plain HTTP unless REGISTRY_TLS=1.
# The worker reaches REGISTRY and the package index (PyPI) from its pod: WORKER_HOST_NETWORK=1 when
# only the node can (as on kind with a registry on the host's localhost, REGISTRY_IN_CLUSTER names
# the address the pods and nodes use, default REGISTRY).
# Environment: NAMESPACE, RELEASE, TIMEOUT (seconds for a state change, default 1200), PORT.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REGISTRY=${REGISTRY:?set REGISTRY=host:port of a registry the cluster pulls from}
REGISTRY_IN_CLUSTER=${REGISTRY_IN_CLUSTER:-$REGISTRY}
NAMESPACE=${NAMESPACE:-spaceyard}
RELEASE=${RELEASE:-spaceyard}
TIMEOUT=${TIMEOUT:-1200}
TOKEN=${TOKEN:-sy_e2e_$(date +%s)_token}
SPACE=admin/e2e-hello
SLUG=space-admin--e2e-hello
PORT=${PORT:-18080}
SPACES_NS=$RELEASE-spaces
URL=http://127.0.0.1:$PORT

step() { printf '\n==> %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  kubectl -n "$SPACES_NS" get deploy,pods,events 2>/dev/null | tail -30 >&2 || true
  kubectl -n "$NAMESPACE" logs deploy/"$RELEASE"-worker --tail 40 >&2 2>/dev/null || true
  exit 1
}
need() { command -v "$1" >/dev/null || fail "$1 is not installed"; }
for tool in docker kubectl helm git curl python3; do need "$tool"; done
python3 -c 'import gradio_client' 2>/dev/null || fail "python3 needs gradio_client (pip install gradio_client)"

api() { # METHOD PATH [JSON]
  curl -fsS -X "$1" -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" ${3:+--data "$3"} "$URL$2"
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin).get('$1') or '')"; }
wait_stage() { # SHA WANTED...: prints the stages seen (of $SPACE, or of WAIT_SPACE when set)
  local sha=$1 deadline=$((SECONDS + TIMEOUT)) s="" seen="" rt
  shift
  while ((SECONDS < deadline)); do
    rt=$(api GET "/api/spaces/${WAIT_SPACE:-$SPACE}/runtime" || true)
    s=$(field stage <<<"$rt")
    [[ "$seen" == *" $s" ]] || seen+=" $s"
    if [[ -z "$sha" || "$(field sha <<<"$rt")" == "$sha" ]]; then
      for want in "$@"; do [[ "$s" == "$want" ]] && { echo "stages:$seen"; return 0; }; done
      [[ "$s" == *ERROR* ]] && fail "stage $s: $(field errorMessage <<<"$rt")"
    fi
    sleep 2
  done
  fail "stage is '$s', expected one of: $* (seen:$seen)"
}
replicas() { kubectl -n "$SPACES_NS" get deploy "$SLUG" -o jsonpath='{.spec.replicas}'; }
greet() { python3 -c "import sys; from gradio_client import Client; print(Client('$URL/apps/$SPACE/', verbose=False).predict(sys.argv[1], api_name='/greet'))" "$1"; }
port_forward() {
  if [[ -n "${PF_PID:-}" ]]; then kill "$PF_PID" 2>/dev/null || true; fi
  kubectl -n "$NAMESPACE" port-forward "svc/$RELEASE" "$PORT:80" >/dev/null 2>&1 &
  PF_PID=$!
  for _ in $(seq 90); do curl -fsS "$URL/api/health" >/dev/null 2>&1 && return 0; sleep 1; done
  fail "platform not reachable through its Service"
}

cleanup() {
  if [[ -n "${PF_PID:-}" ]]; then kill "$PF_PID" 2>/dev/null || true; fi
  if [[ "${KEEP:-0}" != 1 ]]; then helm uninstall "$RELEASE" -n "$NAMESPACE" --wait >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

step "images: build (or reuse) and push to $REGISTRY"
eval "$(bash "$ROOT/helm/images.sh" "$REGISTRY")"
retag() { echo "$REGISTRY_IN_CLUSTER/${1#"$REGISTRY"/}"; }
PLATFORM=$(retag "$SPACEYARD_IMAGE_PLATFORM")

step "helm lint + install (values.schema.json is enforced by helm)"
helm lint --strict "$ROOT/helm/spaceyard"
SETS=(
  --set image.repository="${PLATFORM%:*}" --set image.tag="${PLATFORM##*:}"
  --set redis.image="$(retag "$SPACEYARD_IMAGE_REDIS")" --set postgresql.image="$(retag "$SPACEYARD_IMAGE_POSTGRESQL")"
  --set host=spaceyard.e2e.test --set appsDomain=apps.e2e.test --set scheme=http --set ingress.enabled=false
  --set adminToken="$TOKEN" --set spaces.namespace="$SPACES_NS"
  --set registry.url="$REGISTRY_IN_CLUSTER" --set registry.repository=spaceyard-e2e/space
  --set registry.insecure="$([[ "${REGISTRY_TLS:-0}" == 1 ]] && echo false || echo true)"
  --set worker.baseImage="$SPACEYARD_IMAGE_BASE" --set worker.hostNetwork="$([[ "${WORKER_HOST_NETWORK:-0}" == 1 ]] && echo true || echo false)"
)
helm install "$RELEASE" "$ROOT/helm/spaceyard" -n "$NAMESPACE" --create-namespace "${SETS[@]}" --wait --timeout 15m
kubectl -n "$SPACES_NS" get lease spaceyard-controller -o jsonpath='{.spec.holderIdentity}' >/dev/null \
  || fail "no controller holds the lease"

step "reach the platform through its Service (port-forward)"
port_forward

step "create $SPACE, push the sample, watch BUILDING -> RUNNING"
api POST /api/repos/create '{"type":"space","organization":"admin","name":"e2e-hello","sdk":"gradio"}' >/dev/null
WORK=$(mktemp -d)
cp -r "$ROOT/sample_spaces/hello-gradio/." "$WORK/"
g() { git -C "$WORK" -c user.email=e2e@spaceyard -c user.name=e2e "$@"; }
g init -q -b main && g add -A && g commit -qm v1
g push -q "http://admin:$TOKEN@127.0.0.1:$PORT/spaces/$SPACE" main
stages=$(wait_stage "$(g rev-parse HEAD)" RUNNING)
echo "$stages"
[[ "$stages" == *BUILDING*RUNNING* ]] || fail "expected BUILDING before RUNNING"
[[ "$(greet e2e)" == "Hello e2e! (v1)" ]] || fail "gradio_client through the gateway"

step "a Docker Space (its own Dockerfile, built by buildah in the worker pod) -> RUNNING"
api POST /api/repos/create '{"type":"space","organization":"admin","name":"e2e-docker","sdk":"docker"}' >/dev/null
DWORK=$(mktemp -d)
cp -r "$ROOT/sample_spaces/hello-docker/." "$DWORK/"
gd() { git -C "$DWORK" -c user.email=e2e@spaceyard -c user.name=e2e "$@"; }
gd init -q -b main && gd add -A && gd commit -qm v1
gd push -q "http://admin:$TOKEN@127.0.0.1:$PORT/spaces/admin/e2e-docker" main
WAIT_SPACE=admin/e2e-docker wait_stage "$(gd rev-parse HEAD)" RUNNING
info=$(curl -fsS --retry 10 --retry-all-errors --retry-delay 3 "$URL/apps/admin/e2e-docker/api/info")
[[ "$(field uid <<<"$info")" == 1000 ]] || fail "the Docker Space's /api/info: $info"
api DELETE /api/repos/delete '{"type":"space","organization":"admin","name":"e2e-docker"}' >/dev/null

step "an app-only change while calling the app without pause (rolling update)"
python3 - "$URL/apps/$SPACE/" "$WORK/calls.log" <<'PY' &
import sys, time
from gradio_client import Client
client, out = Client(sys.argv[1], verbose=False), open(sys.argv[2], "w", buffering=1)
v2 = 0
while v2 < 5:
    try:
        answer = client.predict("rolling", api_name="/greet")
        out.write(f"ok {answer}\n")
        v2 += answer.endswith("(v2)")
    except Exception as exc:
        out.write(f"FAILED {type(exc).__name__}: {exc}\n")
PY
CALLER=$!
sed -i 's/"HELLO_VERSION", "v1"/"HELLO_VERSION", "v2"/' "$WORK/app.py"
g commit -qam v2
g push -q "http://admin:$TOKEN@127.0.0.1:$PORT/spaces/$SPACE" main
wait_stage "$(g rev-parse HEAD)" RUNNING
wait "$CALLER"
failed=$(grep -c '^FAILED' "$WORK/calls.log" || true)
echo "$(wc -l <"$WORK/calls.log") calls, $failed failed"
[[ "$failed" == 0 ]] || fail "calls failed during the rolling update: $(grep -m3 '^FAILED' "$WORK/calls.log")"

step "sleep (0 replicas), then wake through the gateway (the request is held)"
api POST "/api/spaces/$SPACE/sleeptime" '{"seconds": 1}' >/dev/null
wait_stage "" SLEEPING
[[ "$(replicas)" == 0 ]] || fail "expected 0 replicas while asleep"
api POST "/api/spaces/$SPACE/sleeptime" '{"seconds": 3600}' >/dev/null
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 600 "$URL/apps/$SPACE/config")
[[ "$code" == 200 ]] || fail "wake request answered $code"
[[ "$(replicas)" == 1 ]] || fail "expected 1 replica after wake"

step "helm upgrade: a new platform pod finds the Space again"
helm upgrade "$RELEASE" "$ROOT/helm/spaceyard" -n "$NAMESPACE" "${SETS[@]}" --set platform.extraEnv.E2E_REVISION=2 \
  --wait --timeout 10m
[[ "$(helm status "$RELEASE" -n "$NAMESPACE" -o json | field version)" == 2 ]] || fail "revision 2"
port_forward
# a restarted platform may bring the Space back SLEEPING (then the visit below wakes it) or RUNNING
wait_stage "$(g rev-parse HEAD)" SLEEPING RUNNING
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 600 "$URL/apps/$SPACE/config")
[[ "$code" == 200 ]] || fail "the Space after the upgrade answered $code"
[[ "$(greet upgraded)" == "Hello upgraded! (v2)" ]] || fail "the Space after the upgrade"

step "delete the Space: every object of it goes"
api DELETE /api/repos/delete '{"type":"space","organization":"admin","name":"e2e-hello"}' >/dev/null
left=x
for _ in $(seq 90); do
  left=$(kubectl -n "$SPACES_NS" get deploy,svc,configmap,secret,networkpolicy,pods -l "spaceyard.dev/space=$SLUG" -o name)
  [[ -z "$left" ]] && break
  sleep 2
done
[[ -z "$left" ]] || fail "left behind: $left"

if [[ "${KEEP:-0}" != 1 ]]; then
  step "helm uninstall: only the kept volumes and the database Secret stay"
  kill "$PF_PID" 2>/dev/null || true
  PF_PID=""
  helm uninstall "$RELEASE" -n "$NAMESPACE" --wait --timeout 10m
  kubectl wait --for=delete "namespace/$SPACES_NS" --timeout=5m 2>/dev/null || true
  left=$(kubectl -n "$NAMESPACE" get deploy,sts,svc,pods,configmap,secret,pvc -o name | grep -v 'configmap/kube-root-ca.crt' | sort)
  kept=$(printf '%s\n' "persistentvolumeclaim/data-$RELEASE-postgresql-0" "persistentvolumeclaim/$RELEASE-data" \
    "secret/$RELEASE-postgresql" | sort)
  [[ "$left" == "$kept" ]] || fail "after uninstall: $left"
  kubectl -n "$NAMESPACE" delete pvc "data-$RELEASE-postgresql-0" "$RELEASE-data" --wait >/dev/null
  kubectl -n "$NAMESPACE" delete secret "$RELEASE-postgresql" >/dev/null
fi

printf '\nPASS: install, build in the cluster (Gradio and Docker Spaces), RUNNING through the gateway, rolling update with no failed call, sleep, wake, upgrade, delete, uninstall\n'
