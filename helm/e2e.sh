#!/usr/bin/env bash
# End-to-end check of the Helm chart on a real cluster (kind or k3s), for people who have one.
#
#   helm/e2e.sh            # uses the current kubectl context
#
# It builds the platform image, loads it into the cluster, installs the chart, creates a Space,
# pushes sample_spaces/hello-gradio, waits for RUNNING through the gateway, then checks sleep
# (Deployment at 0 replicas) and wake (a request through the gateway brings it back).
#
# Needs: docker, kubectl, helm, git, curl, python3; a cluster with a default StorageClass, and a
# registry the build Jobs can push to and the nodes can pull from (REGISTRY, e.g. a kind registry
# at localhost:5001 - https://kind.sigs.k8s.io/docs/user/local-registry/).
# Environment: CLUSTER=kind|k3s (how to load the image), KIND_NAME, REGISTRY, NAMESPACE, RELEASE,
# TIMEOUT (seconds for a state change, default 900), KEEP=1 to leave everything installed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLUSTER=${CLUSTER:-kind}
KIND_NAME=${KIND_NAME:-kind}
NAMESPACE=${NAMESPACE:-spaceyard}
RELEASE=${RELEASE:-spaceyard}
IMAGE_REPO=${IMAGE_REPO:-spaceyard}
IMAGE_TAG=${IMAGE_TAG:-e2e}
REGISTRY=${REGISTRY:-localhost:5001/spaceyard}
TIMEOUT=${TIMEOUT:-900}
TOKEN=${TOKEN:-e2e-$(date +%s)-token}
HOST=spaceyard.e2e.test
APPS=apps.e2e.test
SPACE=admin/e2e-hello
PORT=${PORT:-18080}
SPACES_NS=spaceyard-spaces

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; kubectl -n "$SPACES_NS" get deploy,pods,events 2>/dev/null | tail -40 >&2 || true; exit 1; }
need() { command -v "$1" >/dev/null || fail "$1 is not installed"; }
for tool in docker kubectl helm git curl python3; do need "$tool"; done

api() { # METHOD PATH [JSON]
  curl -fsS -X "$1" -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
    ${3:+--data "$3"} "http://127.0.0.1:$PORT$2"
}
stage() { api GET "/api/spaces/$SPACE/runtime" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stage"])'; }
wait_stage() { # WANTED...
  local deadline=$((SECONDS + TIMEOUT)) s=""
  while ((SECONDS < deadline)); do
    s=$(stage || true)
    for want in "$@"; do [[ "$s" == "$want" ]] && { echo "stage $s"; return 0; }; done
    [[ "$s" == *ERROR* ]] && fail "stage $s"
    sleep 3
  done
  fail "stage is '$s', expected one of: $*"
}
replicas() { kubectl -n "$SPACES_NS" get deploy space-admin--e2e-hello -o jsonpath='{.spec.replicas}'; }

cleanup() {
  if [[ -n "${PF_PID:-}" ]]; then kill "$PF_PID" 2>/dev/null || true; fi
  if [[ "${KEEP:-0}" != 1 ]]; then
    helm uninstall "$RELEASE" -n "$NAMESPACE" >/dev/null 2>&1 || true
    kubectl delete namespace "$SPACES_NS" spaceyard-builds --ignore-not-found --wait=false >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

step "build the platform image and load it into the cluster ($CLUSTER)"
docker build -f "$ROOT/helm/Dockerfile" -t "$IMAGE_REPO:$IMAGE_TAG" "$ROOT"
case "$CLUSTER" in
  kind) kind load docker-image "$IMAGE_REPO:$IMAGE_TAG" --name "$KIND_NAME" ;;
  k3s) docker save "$IMAGE_REPO:$IMAGE_TAG" | sudo k3s ctr images import - ;;
  *) echo "CLUSTER=$CLUSTER: make $IMAGE_REPO:$IMAGE_TAG pullable by the nodes yourself" ;;
esac

step "helm lint + install (values.schema.json is enforced by helm)"
helm lint --strict "$ROOT/helm/spaceyard"
helm upgrade --install "$RELEASE" "$ROOT/helm/spaceyard" -n "$NAMESPACE" --create-namespace \
  --set image.repository="$IMAGE_REPO" --set image.tag="$IMAGE_TAG" --set image.pullPolicy=Never \
  --set host="$HOST" --set appsDomain="$APPS" --set scheme=http --set ingress.enabled=false \
  --set adminToken="$TOKEN" --set registry.url="$REGISTRY" --set registry.insecure=true \
  --wait --timeout 10m
kubectl -n "$NAMESPACE" rollout status deploy/"$RELEASE"-controller --timeout=5m
kubectl -n "$SPACES_NS" get lease spaceyard-controller -o jsonpath='{.spec.holderIdentity}' \
  || fail "no controller holds the lease"

step "reach the platform through its Service"
kubectl -n "$NAMESPACE" port-forward "svc/$RELEASE" "$PORT:80" >/dev/null &
PF_PID=$!
for _ in $(seq 60); do curl -fsS "http://127.0.0.1:$PORT/api/health" >/dev/null 2>&1 && break; sleep 1; done
curl -fsS "http://127.0.0.1:$PORT/api/health" >/dev/null || fail "platform not reachable"

step "create $SPACE and push the sample"
api POST /api/repos/create '{"type":"space","organization":"admin","name":"e2e-hello","sdk":"gradio"}' >/dev/null
WORK=$(mktemp -d)
cp -r "$ROOT/sample_spaces/hello-gradio/." "$WORK/"
git -C "$WORK" init -q -b main
git -C "$WORK" add -A
git -C "$WORK" -c user.email=e2e@spaceyard -c user.name=e2e commit -qm "e2e"
git -C "$WORK" push -q "http://admin:$TOKEN@127.0.0.1:$PORT/spaces/$SPACE" main

step "wait for RUNNING (build Job, image push, Deployment ready)"
wait_stage RUNNING
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: admin-e2e-hello.$APPS" "http://127.0.0.1:$PORT/")
[[ "$code" == 200 ]] || fail "gateway answered $code for the app"
[[ "$(replicas)" == 1 ]] || fail "expected 1 replica"
kubectl -n "$SPACES_NS" get networkpolicy space-admin--e2e-hello >/dev/null || fail "no NetworkPolicy"

step "sleep: a short sleep time puts the Space to sleep (scaled to zero)"
api POST "/api/spaces/$SPACE/sleeptime" '{"seconds": 5}' >/dev/null || fail "sleeptime endpoint"
wait_stage SLEEPING PAUSED
[[ "$(replicas)" == 0 ]] || fail "expected 0 replicas while asleep"

step "wake: a request through the gateway scales it back to one"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 300 -H "Host: admin-e2e-hello.$APPS" "http://127.0.0.1:$PORT/")
[[ "$code" == 200 ]] || fail "wake request answered $code"
wait_stage RUNNING
[[ "$(replicas)" == 1 ]] || fail "expected 1 replica after wake"

step "delete: every object of the Space goes"
api DELETE /api/repos/delete '{"type":"space","organization":"admin","name":"e2e-hello"}' >/dev/null
for _ in $(seq 60); do
  left=$(kubectl -n "$SPACES_NS" get all,configmap,secret,networkpolicy -l spaceyard.dev/space=space-admin--e2e-hello -o name)
  [[ -z "$left" ]] && break
  sleep 2
done
[[ -z "$left" ]] || fail "left behind: $left"

printf '\nPASS: install, build, RUNNING through the gateway, sleep, wake, delete\n'
