#!/usr/bin/env bash
# A real single-machine Kubernetes cluster for development and CI (no registry needed).
#
#   helm/dev-cluster.sh up      build once (cached), start everything, print KUBECONFIG=...
#   helm/dev-cluster.sh down    stop every process this script started, remove the node's pods
#   helm/dev-cluster.sh env     print KUBECONFIG=... (exit 1 when the cluster is not up)
#   helm/dev-cluster.sh build   only build (or reuse) the binaries
#   helm/dev-cluster.sh status  one line per component
#
# Binaries are built from the Go module proxy into $SPACEYARD_K8S_CACHE (default
# ~/.cache/spaceyard/kubernetes/<version>): kube-apiserver, kube-controller-manager, kube-scheduler and
# kubelet from k8s.io/kubernetes through a throw-away wrapper module (k8s.io/kubernetes requires its
# staging modules at v0.0.0; the wrapper replaces each with the published v0.X), etcd from
# go.etcd.io/etcd/server/v3 the same way, and kwok from sigs.k8s.io/kwok. containerd, runc, the CNI
# plugins and the registry come from Debian.
#
# What runs (all on this machine, state in $SPACEYARD_K8S_STATE, default /var/lib/spaceyard-k8s):
#   etcd (127.0.0.1:2379), kube-apiserver (https://127.0.0.1:6443), kube-controller-manager,
#   kube-scheduler, containerd (own socket and root), one real kubelet (node "cpu-0", CPU pool, CNI
#   bridge syk0 10.88.0.0/16, node IP 10.88.0.1), kwok managing the fake node "gpu-0" (GPU pool,
#   advertises nvidia.com/gpu: 1, tainted nvidia.com/gpu:NoSchedule), a registry on
#   127.0.0.1:5000 (containerd pulls localhost:5000/... over plain HTTP), and CoreDNS on 10.88.0.1:53
#   answering cluster names (*.svc.cluster.local; the kubelet has no clusterDNS: pods that need names
#   set dnsPolicy None + dnsConfig nameservers [10.88.0.1], as the chart's tests do).
set -euo pipefail

K8S_VERSION=${SPACEYARD_K8S_VERSION:-v1.35.4}
ETCD_VERSION=${SPACEYARD_ETCD_VERSION:-v3.6.16}
KWOK_VERSION=${SPACEYARD_KWOK_VERSION:-v0.7.0}
COREDNS_VERSION=${SPACEYARD_COREDNS_VERSION:-v1.14.7}
CACHE=${SPACEYARD_K8S_CACHE:-$HOME/.cache/spaceyard/kubernetes/$K8S_VERSION}
STATE=${SPACEYARD_K8S_STATE:-/var/lib/spaceyard-k8s}
BIN=$CACHE/bin
RUN=$STATE/run
LOGS=$STATE/logs
PKI=$STATE/pki
KUBECONFIG_OUT=$STATE/admin.kubeconfig
BRIDGE=syk0
POD_CIDR=10.88.0.0/16
NODE_IP=10.88.0.1
SERVICE_CIDR=10.96.0.0/16
REGISTRY=127.0.0.1:5000
NODE=cpu-0
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy etcd kwok coredns)
GPU_NODE=gpu-0

log() { printf '==> %s\n' "$*" >&2; }
PROXY_CONFIG_CHANGED=""
put_proxy_config() { # FILE: stdin into FILE (kube-proxy's), unless it already holds exactly that
  local tmp
  tmp=$(mktemp "$1.XXXXXX")
  cat >"$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv -f "$tmp" "$1"; PROXY_CONFIG_CHANGED=1; fi
}
die() { printf 'dev-cluster: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- build

build_wrapper() { # $1 module dir, $2 go.mod body, $3 extra ldflags, $4.. packages; binaries go to $BIN
  local dir=$1 gomod=$2 ldflags=$3; shift 3
  mkdir -p "$dir" "$BIN"
  printf '%s\n' "$gomod" >"$dir/go.mod"
  # a file importing every main package keeps `go mod tidy` from dropping them
  { echo '//go:build tools'; echo 'package tools'; echo 'import ('
    for p in "$@"; do echo "	_ \"$p\""; done; echo ')'; } >"$dir/tools.go"
  (cd "$dir" && GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || GOFLAGS=-mod=mod go mod tidy)
  for p in "$@"; do
    log "go build ${p##*/}"
    (cd "$dir" && CGO_ENABLED=0 nice -n "${SPACEYARD_BUILD_NICE:-10}" go build -mod=mod -trimpath -ldflags="-s -w $ldflags" -o "$BIN/${p##*/}.tmp" "$p")
    mv "$BIN/${p##*/}.tmp" "$BIN/${p##*/}"
  done
}

RECIPE=2 # bump when the way binaries are built changes: cached binaries of another recipe are rebuilt

build() {
  if [ "$(cat "$CACHE/recipe" 2>/dev/null)" != "$RECIPE" ]; then
    rm -f "$BIN"/kube-* "$BIN/kubelet"
    mkdir -p "$CACHE"
    echo "$RECIPE" >"$CACHE/recipe"
  fi
  local need=()
  for b in "${BINARIES[@]}"; do
    [ -x "$BIN/$b" ] || need+=("$b")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  command -v go >/dev/null || die "go is needed to build ${need[*]}"
  local t0=$SECONDS
  log "building ${need[*]} into $BIN (once; nice, all cores)"
  # Kubernetes: the wrapper replaces every staging module listed in k8s.io/kubernetes' own go.mod
  local kmod ver=${K8S_VERSION#v1.} staging=""
  kmod=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$kmod" ] || die "cannot download k8s.io/kubernetes@$K8S_VERSION"
  while read -r m; do staging+="	$m => $m v0.$ver"$'\n'; done < <(sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$kmod")
  local k8s_pkgs=()
  for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
    [[ " ${need[*]} " == *" $b "* ]] && k8s_pkgs+=("k8s.io/kubernetes/cmd/$b")
  done
  if [ ${#k8s_pkgs[@]} -gt 0 ]; then
    # what `make` stamps in (the API server reports it at /version; Helm checks kubeVersion against it)
    local v minor=${ver%%.*} x=""
    for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      x+=" -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
      x+=" -X $v.buildDate=1970-01-01T00:00:00Z"
    done
    build_wrapper "$CACHE/src/kubernetes" "module spaceyard.local/devcluster/kubernetes

go 1.25.0

require k8s.io/kubernetes $K8S_VERSION

replace (
$staging)" "$x" "${k8s_pkgs[@]}"
  fi
  if [[ " ${need[*]} " == *" etcd "* ]]; then
    # etcd's modules replace each other with relative paths: the wrapper pins them all to one version
    build_wrapper "$CACHE/src/etcd" "module spaceyard.local/devcluster/etcd

go 1.25.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
" "" go.etcd.io/etcd/server/v3
    mv "$BIN/v3" "$BIN/etcd"
  fi
  if [[ " ${need[*]} " == *" kwok "* ]]; then
    build_wrapper "$CACHE/src/kwok" "module spaceyard.local/devcluster/kwok

go 1.25.0

require sigs.k8s.io/kwok $KWOK_VERSION
" "" sigs.k8s.io/kwok/cmd/kwok
  fi
  if [[ " ${need[*]} " == *" coredns "* ]]; then build_coredns; fi
  log "built ${need[*]} in $((SECONDS - t0)) s"
  echo "$(date -u +%FT%TZ) built ${need[*]} in $((SECONDS - t0)) s" >>"$CACHE/build.log"
}

# CoreDNS with only the plugins of the Corefile below: a main package of our own importing them (the
# upstream main imports every plugin, cloud SDKs included). v1.14.x requires the same k8s.io modules
# (v0.35.4) as the Kubernetes binaries, so their compiled packages are reused.
build_coredns() {
  local dir=$CACHE/src/coredns
  mkdir -p "$dir/cmd/coredns" "$BIN"
  printf 'module spaceyard.local/devcluster/coredns\n\ngo 1.25.0\n\nrequire github.com/coredns/coredns %s\n' \
    "$COREDNS_VERSION" >"$dir/go.mod"
  cat >"$dir/cmd/coredns/main.go" <<'GO'
// coredns with only the plugins the dev cluster's Corefile uses.
package main

import (
	_ "github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() { coremain.Run() }
GO
  log "go build coredns"
  (cd "$dir" && GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || GOFLAGS=-mod=mod go mod tidy)
  (cd "$dir" && CGO_ENABLED=0 nice -n "${SPACEYARD_BUILD_NICE:-10}" go build -mod=mod -trimpath -ldflags='-s -w' -o "$BIN/coredns.tmp" ./cmd/coredns)
  mv "$BIN/coredns.tmp" "$BIN/coredns"
}

# A pause image for pod sandboxes (none can be pulled): a static Go program that waits for a signal.
build_pause() {
  [ -x "$BIN/pause" ] && return 0
  local dir=$CACHE/src/pause
  mkdir -p "$dir"
  printf 'module spaceyard.local/devcluster/pause\n\ngo 1.25.0\n' >"$dir/go.mod"
  cat >"$dir/main.go" <<'GO'
// pause holds a pod's namespaces open until it is told to stop, reaping zombies meanwhile.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 4)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range c {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
GO
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$BIN/pause" .)
}

# ---------------------------------------------------------------- processes

pidfile() { echo "$RUN/$1.pid"; }
alive() { # NAME: the recorded process is running and is still the binary we started
  local f pid
  f=$(pidfile "$1")
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -d "/proc/$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$STATE\|$BIN"
}
start() { # NAME CMD...: start in its own session, log to $LOGS/NAME.log
  local name=$1; shift
  alive "$name" && return 0
  log "start $name"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$(pidfile "$name")"
}
stop() { # NAME: TERM, then KILL after 10 s
  local f pid
  f=$(pidfile "$1")
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if alive "$1"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
    [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}
wait_for() { # SECONDS WHAT CMD...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { tail -20 "$LOGS"/*.log >&2 2>/dev/null || true; die "timed out waiting for $what"; }
    sleep 0.5
  done
}
kapi() { # METHOD PATH [curl args]: the API server as the admin (no kubectl needed)
  local method=$1 path=$2; shift 2
  curl -fsS -X "$method" --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$@" \
    "https://127.0.0.1:6443$path"
}

# ---------------------------------------------------------------- configuration

pki() {
  [ -f "$PKI/admin.crt" ] && return 0
  mkdir -p "$PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj /CN=spaceyard-dev-ca 2>/dev/null
    cat >server.ext <<EXT
subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1,IP:$NODE_IP
extendedKeyUsage=serverAuth
EXT
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=kube-apiserver 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 3650 -extfile server.ext 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=spaceyard-admin" 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 3650 -extfile client.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

write_configs() {
  mkdir -p "$STATE/cni/net.d" "$STATE/containerd" "$STATE/kubelet" "$STATE/registry"
  cat >"$KUBECONFIG_OUT" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: spaceyard-dev
  cluster: {server: "https://127.0.0.1:6443", certificate-authority: "$PKI/ca.crt"}
users:
- name: admin
  user: {client-certificate: "$PKI/admin.crt", client-key: "$PKI/admin.key"}
contexts:
- name: spaceyard-dev
  context: {cluster: spaceyard-dev, user: admin}
current-context: spaceyard-dev
YAML
  cat >"$STATE/containerd/config.toml" <<TOML
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
[grpc]
  address = "$RUN/containerd.sock"
[ttrpc]
  address = "$RUN/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "spaceyard.local/pause:1"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$REGISTRY"]
    endpoint = ["http://$REGISTRY"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."localhost:5000"]
    endpoint = ["http://$REGISTRY"]
TOML
  cat >"$STATE/cni/net.d/10-spaceyard.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "spaceyard", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$STATE/cni/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
  cat >"$STATE/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$RUN/containerd.sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: AlwaysAllow}
readOnlyPort: 0
healthzPort: 10248
clusterDomain: cluster.local
podLogsDir: "$STATE/pod-logs"
maxPods: 60
serializeImagePulls: false
imageGCHighThresholdPercent: 95
imageGCLowThresholdPercent: 90
evictionHard: {memory.available: "200Mi", nodefs.available: "2%", imagefs.available: "2%"}
YAML
  # kube-proxy exits whenever its config file is written: written only when it changes (every test session
  # runs `up`; a rewrite used to end kube-proxy, and `start` could still see it alive: no kube-proxy at all)
  put_proxy_config "$STATE/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$KUBECONFIG_OUT"}
hostnameOverride: $NODE
clusterCIDR: $POD_CIDR
mode: iptables
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0}
YAML
  # cluster names from the API server, anything else forwarded to this machine's resolver (pods on the
  # pod network cannot leave the machine anyway; host-network pods such as a build worker can)
  cat >"$STATE/Corefile" <<COREFILE
.:53 {
  bind $NODE_IP
  errors
  health 127.0.0.1:10254
  ready 127.0.0.1:10255
  kubernetes cluster.local in-addr.arpa ip6.arpa {
    kubeconfig $KUBECONFIG_OUT
    pods insecure
    fallthrough in-addr.arpa ip6.arpa
  }
  forward . /etc/resolv.conf
  cache 5
  loadbalance
}
COREFILE
  cat >"$STATE/registry.yaml" <<YAML
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: "$STATE/registry"}
  delete: {enabled: true}
http: {addr: "$REGISTRY"}
YAML
}

# The bridge exists before the kubelet starts (its node IP is the bridge's). Traffic from pods to
# anything outside the pod network is dropped, and the Service and kwok pod ranges never leave
# this machine even when nothing answers there.
network() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip addr replace "$NODE_IP/16" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  ip route replace "$SERVICE_CIDR" dev "$BRIDGE"
  ip route replace blackhole 10.99.0.0/16
  iptables -C FORWARD -s "$POD_CIDR" ! -d "$POD_CIDR" -j DROP 2>/dev/null \
    || iptables -I FORWARD -s "$POD_CIDR" ! -d "$POD_CIDR" -j DROP
}

gpu_node() { # NAME: a kwok-managed node of the GPU pool
  cat <<YAML
apiVersion: v1
kind: Node
metadata:
  name: $1
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels:
    kubernetes.io/hostname: $1
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
    spaceyard.dev/pool: gpu
    nvidia.com/gpu.present: "true"
    nvidia.com/gpu.product: Tesla-T4
spec:
  taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
status:
  capacity: {cpu: "8", memory: 32Gi, pods: "110", nvidia.com/gpu: "1"}
  allocatable: {cpu: "8", memory: 32Gi, pods: "110", nvidia.com/gpu: "1"}
YAML
}

node_ready() { # NAME
  kapi GET "/api/v1/nodes/$1" | python3 -c 'import json, sys
conditions = json.load(sys.stdin)["status"].get("conditions") or []
sys.exit(0 if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) else 1)'
}

up() {
  build
  build_pause
  command -v containerd >/dev/null && command -v runc >/dev/null && [ -x /usr/lib/cni/bridge ] \
    && command -v docker-registry >/dev/null && command -v conntrack >/dev/null \
    || die "needs Debian's containerd runc containernetworking-plugins docker-registry conntrack"
  local t0=$SECONDS
  # nothing of ours runs (first start, after `down`, a crash or a reboot): start from a clean slate
  any_alive || cleanup
  mkdir -p "$RUN" "$LOGS"
  pki
  write_configs
  network

  start etcd "$BIN/etcd" --name dev --data-dir "$STATE/etcd" --listen-client-urls http://127.0.0.1:2379 \
    --advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 \
    --initial-advertise-peer-urls http://127.0.0.1:2380 --initial-cluster dev=http://127.0.0.1:2380 \
    --listen-metrics-urls http://127.0.0.1:2381 --quota-backend-bytes 2147483648 --log-level warn
  start kube-apiserver "$BIN/kube-apiserver" --etcd-servers http://127.0.0.1:2379 \
    --bind-address 0.0.0.0 --advertise-address "$NODE_IP" --secure-port 6443 \
    --tls-cert-file "$PKI/server.crt" --tls-private-key-file "$PKI/server.key" --client-ca-file "$PKI/ca.crt" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range "$SERVICE_CIDR" --authorization-mode Node,RBAC --allow-privileged \
    --kubelet-client-certificate "$PKI/admin.crt" --kubelet-client-key "$PKI/admin.key" \
    --kubelet-preferred-address-types InternalIP --profiling=false --event-ttl 30m \
    --enable-priority-and-fairness=false
  wait_for 120 "the API server" kapi GET /readyz
  start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig "$KUBECONFIG_OUT" \
    --leader-elect=false --bind-address 127.0.0.1 --service-account-private-key-file "$PKI/sa.key" \
    --root-ca-file "$PKI/ca.crt" --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --controllers '*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route' --profiling=false \
    --concurrent-gc-syncs 5
  start kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$KUBECONFIG_OUT" --leader-elect=false \
    --bind-address 127.0.0.1 --profiling=false
  start containerd containerd --config "$STATE/containerd/config.toml"
  wait_for 60 containerd ctr -a "$RUN/containerd.sock" version
  if ! ctr -a "$RUN/containerd.sock" -n k8s.io images ls -q | grep -qx spaceyard.local/pause:1; then
    local tmp
    tmp=$(mktemp -d)
    mkdir -p "$tmp/root"
    cp "$BIN/pause" "$tmp/root/pause"
    tar -C "$tmp/root" -c . | docker import -c 'ENTRYPOINT ["/pause"]' - spaceyard.local/pause:1 >/dev/null
    docker save spaceyard.local/pause:1 -o "$tmp/pause.tar"
    ctr -a "$RUN/containerd.sock" -n k8s.io images import "$tmp/pause.tar" >/dev/null
    rm -rf "$tmp"
  fi
  start kubelet "$BIN/kubelet" --config "$STATE/kubelet/config.yaml" --kubeconfig "$KUBECONFIG_OUT" \
    --hostname-override "$NODE" --node-ip "$NODE_IP" --root-dir "$STATE/kubelet/root" \
    --cert-dir "$STATE/kubelet/pki" --node-labels "spaceyard.dev/pool=cpu"
  [ -z "$PROXY_CONFIG_CHANGED" ] || stop kube-proxy # it ends itself on the new file: wait, then a new one
  start kube-proxy "$BIN/kube-proxy" --config "$STATE/kube-proxy.yaml"
  start kwok "$BIN/kwok" --kubeconfig "$KUBECONFIG_OUT" --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake --cidr 10.99.0.0/16 \
    --node-ip 10.99.0.1 --server-address 127.0.0.1:10247
  start registry docker-registry serve "$STATE/registry.yaml"
  start coredns "$BIN/coredns" -conf "$STATE/Corefile"
  wait_for 120 "node $NODE" node_ready "$NODE"
  kapi GET "/api/v1/nodes/$GPU_NODE" >/dev/null 2>&1 || gpu_node "$GPU_NODE" \
    | kapi POST /api/v1/nodes -H 'Content-Type: application/yaml' --data-binary @- >/dev/null
  wait_for 60 "node $GPU_NODE" node_ready "$GPU_NODE"
  wait_for 30 "the registry" curl -fsS "http://$REGISTRY/v2/"
  wait_for 60 "CoreDNS" curl -fsS http://127.0.0.1:10255/ready
  wait_for 60 "the default service account" kapi GET /api/v1/namespaces/default/serviceaccounts/default
  log "cluster up in $((SECONDS - t0)) s"
  env_lines
}

env_lines() {
  echo "KUBECONFIG=$KUBECONFIG_OUT"
  echo "SPACEYARD_DEV_REGISTRY=$REGISTRY"
  echo "SPACEYARD_DEV_DNS=$NODE_IP"
}

COMPONENTS=(coredns registry kwok kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver etcd containerd)

# every process of a pod: the kubelet's cgroups (cgroupfs driver, under /kubepods in every hierarchy)
kill_pods() {
  local procs
  for _ in 1 2 3; do
    procs=$({ cat /sys/fs/cgroup/*/kubepods/cgroup.procs /sys/fs/cgroup/*/kubepods/*/cgroup.procs \
      /sys/fs/cgroup/*/kubepods/*/*/cgroup.procs /sys/fs/cgroup/*/kubepods/*/*/*/cgroup.procs 2>/dev/null || true; } \
      | sort -u)
    [ -z "$procs" ] && break
    # shellcheck disable=SC2086
    kill -KILL $procs 2>/dev/null || true
    sleep 0.5
  done
  # shims of our containerd (its socket path is in their command line)
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $RUN/containerd.sock" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  find /sys/fs/cgroup/*/kubepods -depth -type d -exec rmdir {} \; 2>/dev/null || true
}

any_alive() {
  for c in "${COMPONENTS[@]}"; do alive "$c" && return 0; done
  return 1
}

down() {
  for c in "${COMPONENTS[@]}"; do stop "$c"; done
  cleanup
  log "cluster down"
}

# what processes leave behind: pods' processes, mounts, network namespaces, rules, the bridge, state
cleanup() {
  kill_pods
  # mounts under the state directory (pod volumes, container root filesystems), the pods' netns
  { grep -o " $STATE[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  for ns in /var/run/netns/cni-*; do
    if [ -e "$ns" ]; then ip netns delete "${ns##*/}" 2>/dev/null || true; fi
  done
  iptables -D FORWARD -s "$POD_CIDR" ! -d "$POD_CIDR" -j DROP 2>/dev/null || true
  # kube-proxy's and the kubelet's rules: every KUBE-* chain and the jumps to them
  if [ -x "$BIN/kube-proxy" ]; then "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  local ipt t rule chain
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for t in filter nat mangle; do
      { "$ipt" -t "$t" -S 2>/dev/null || true; } | { grep -E '^-A [A-Z]+ .*-j KUBE-' || true; } \
        | { grep -vE '^-A KUBE-' || true; } | sed 's/^-A/-D/' \
        | while read -r rule; do eval "$ipt -t $t $rule" 2>/dev/null || true; done
      for chain in $("$ipt" -t "$t" -S 2>/dev/null | sed -n 's/^-N \(KUBE-[A-Z0-9-]*\)$/\1/p'); do
        "$ipt" -t "$t" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$ipt" -t "$t" -S 2>/dev/null | sed -n 's/^-N \(KUBE-[A-Z0-9-]*\)$/\1/p'); do
        "$ipt" -t "$t" -X "$chain" 2>/dev/null || true
      done
    done
  done
  ip route del "$SERVICE_CIDR" dev "$BRIDGE" 2>/dev/null || true
  ip route del blackhole 10.99.0.0/16 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
  # a fresh cluster next time; the registry's images are kept (nodes pull them again)
  rm -rf "$STATE/etcd" "$STATE/kubelet" "$STATE/cni/ipam" "$STATE/pod-logs" "$STATE/containerd" "$KUBECONFIG_OUT"
  return 0
}

status() {
  for c in "${COMPONENTS[@]}"; do
    if alive "$c"; then echo "$c running (pid $(cat "$(pidfile "$c")"))"; else echo "$c stopped"; fi
  done
}

# one `up`/`down` at a time (test sessions may start the cluster concurrently)
mkdir -p "$STATE"
exec 9>"$STATE/lock"
flock 9

case "${1:-}" in
  build) build; build_pause ;;
  up) up ;;
  down) down ;;
  env) [ -f "$KUBECONFIG_OUT" ] && alive kube-apiserver || die "the cluster is not up (helm/dev-cluster.sh up)"; env_lines ;;
  status) status ;;
  *) echo "usage: $0 up|down|env|build|status" >&2; exit 2 ;;
esac
