#!/usr/bin/env bash
# Brings up a real single-node Kubernetes cluster inside a network namespace of
# its own: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# containerd, the kubelet, kube-proxy and CoreDNS, plus a FerretDB on the node
# IP. Needs root. hack/node/down.sh undoes all of it; make test-node runs both.
#
# Nothing leaves the namespace: its only route out is a veth whose packets
# are dropped, so every image is imported, never pulled.
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || die "the node needs root (it runs the kubelet and containerd)"
[ ! -e "$NETNS" ] || die "$NETNS exists: a node is up (hack/node/down.sh tears it down)"
started=$SECONDS

# --- Host packages: runc, the CNI plugins, iptables for kube-proxy and CNI.
need=()
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
	say "installing Debian packages: ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- Tools: cached per version like the others (hack/tools/install.sh).
# FerretDB with authentication where the tree has it (hack/tools/ferretdb-auth).
ferretdb=ferretdb
[ -d "$root/hack/tools/ferretdb-auth" ] && ferretdb=ferretdb-auth
"$root/hack/tools/install.sh" etcd kube-apiserver kubectl helm $ferretdb mkimage pause coredns wget containerd \
	kubelet kube-scheduler kube-controller-manager kube-proxy
say "tools ready ($((SECONDS - started))s)"

# --- State, saved host settings.
mkdir -p "$STATE" "$RUN"/{pids,logs} "$STATE"/{pki,images,cni/net.d,helm-home,ferretdb}
: >"$RUN/created-host-paths"
for p in "${HOST_PATHS[@]}"; do [ -e "$p" ] || echo "$p" >>"$RUN/created-host-paths"; done
for s in "${HOST_SYSCTLS[@]}"; do echo "$s=$(sysctl -n "$s")"; done >"$RUN/saved-sysctls"
for c in /sys/fs/cgroup/*; do [ -d "$c/kubepods" ] || echo "$c/kubepods"; done >"$RUN/created-cgroups"

# --- Images, built without Docker from static binaries.
# userve's is exactly what `make image` writes.
make -s -C "$root" --no-print-directory image IMG="$USERVE_IMAGE" >/dev/null
cp "$bin/userve-image.tar" "$STATE/images/userve.tar"
mk() { "$bin/mkimage" build -epoch 0 "$@" >/dev/null; }
mk -out "$STATE/images/pause.tar" -tag "$PAUSE_IMAGE" -user 65535:65535 \
	-file "$(readlink -f "$bin/pause")":/pause -entrypoint /pause
mk -out "$STATE/images/coredns.tar" -tag "$COREDNS_IMAGE" -passwd -user 65532:65532 \
	-file "$(readlink -f "$bin/coredns")":/coredns -entrypoint /coredns
# The chart's `helm test` pod runs busybox's wget: a static Go wget stands in.
mk -out "$STATE/images/busybox.tar" -tag "$BUSYBOX_IMAGE" -passwd -env PATH=/bin \
	-file "$(readlink -f "$bin/wget")":/bin/wget -entrypoint /bin/wget
say "images built ($((SECONDS - started))s)"

# --- The network namespace: one veth pair with both ends inside, the node IP
# and the default route on one end, and every packet leaving by it dropped.
ip netns add "$NS"
in_ns ip link set lo up
in_ns ip link add "$VETH" type veth peer name "$VETH_PEER"
in_ns ip addr add "$NODE_IP/24" dev "$VETH"
in_ns ip addr add "$PEER_IP/24" dev "$VETH_PEER"
in_ns ip link set "$VETH" up
in_ns ip link set "$VETH_PEER" up
in_ns ip route add default via "$PEER_IP" dev "$VETH"
in_ns iptables -t mangle -A POSTROUTING -o "$VETH" -j DROP
in_ns sysctl -qw net.ipv4.ip_forward=1
# Pods reach ClusterIPs behind the bridge through iptables (per namespace).
in_ns sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true

# --- PKI: one CA; a serving cert for the apiserver; a client cert per component.
pki=$STATE/pki
openssl_quiet() { openssl "$@" 2>/dev/null; }
openssl_quiet req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj /CN=userve-node-ca -keyout "$pki/ca.key" -out "$pki/ca.crt"
cert() { # NAME SUBJECT [SAN]
	openssl_quiet req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$2" \
		-keyout "$pki/$1.key" -out "$pki/$1.csr"
	local ext="basicConstraints=CA:FALSE"
	[ -z "${3:-}" ] || ext="$ext
subjectAltName=$3"
	openssl_quiet x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
		-days 2 -out "$pki/$1.crt" -extfile <(echo "$ext")
}
kubeconfig() { # NAME
	cat >"$pki/$1.kubeconfig" <<-YAML
		apiVersion: v1
		kind: Config
		clusters: [{name: node, cluster: {server: "https://$NODE_IP:6443", certificate-authority: "$pki/ca.crt"}}]
		users: [{name: $1, user: {client-certificate: "$pki/$1.crt", client-key: "$pki/$1.key"}}]
		contexts: [{name: node, context: {cluster: node, user: $1}}]
		current-context: node
	YAML
}
cert apiserver /CN=kube-apiserver \
	"IP:$NODE_IP,IP:$KUBERNETES_SVC_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert admin "/O=system:masters/CN=admin"
cert controller-manager /CN=system:kube-controller-manager
cert scheduler /CN=system:kube-scheduler
cert kube-proxy /CN=system:kube-proxy
cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME"
for n in admin controller-manager scheduler kube-proxy kubelet; do kubeconfig "$n"; done
openssl_quiet genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 -out "$pki/sa.key"
openssl_quiet pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

# daemon NAME CMD...: start CMD in the namespace, its log in $RUN/logs, its
# pid in $RUN/pids (down.sh stops exactly these pids).
daemon() {
	local name=$1; shift
	nsenter --net="$NETNS" "$@" >"$RUN/logs/$name.log" 2>&1 &
	echo $! >"$RUN/pids/$name"
}
healthy() { curl -fsk --max-time 2 "$1" >/dev/null; }
in_ns_healthy() { in_ns curl -fsk --max-time 2 "$@" >/dev/null; }

# --- Control plane.
daemon etcd "$bin/etcd" --data-dir "$STATE/etcd" --listen-client-urls http://127.0.0.1:2379 \
	--advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 \
	--initial-advertise-peer-urls http://127.0.0.1:2380 --initial-cluster default=http://127.0.0.1:2380 \
	--log-level warn --unsafe-no-fsync
wait_for etcd 30 in_ns_healthy http://127.0.0.1:2379/health

daemon kube-apiserver "$bin/kube-apiserver" --etcd-servers http://127.0.0.1:2379 \
	--advertise-address "$NODE_IP" --bind-address 0.0.0.0 --secure-port 6443 \
	--service-cluster-ip-range "$SERVICE_CIDR" \
	--tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
	--client-ca-file "$pki/ca.crt" --authorization-mode Node,RBAC \
	--service-account-issuer https://kubernetes.default.svc.cluster.local \
	--service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
	--kubelet-client-certificate "$pki/admin.crt" --kubelet-client-key "$pki/admin.key" \
	--kubelet-preferred-address-types InternalIP --enable-priority-and-fairness=false
wait_for kube-apiserver 60 kubectl get --raw /readyz

cat >"$STATE/scheduler.yaml" <<YAML
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection: {kubeconfig: "$pki/scheduler.kubeconfig"}
leaderElection: {leaderElect: false}
YAML
daemon kube-scheduler "$bin/kube-scheduler" --config "$STATE/scheduler.yaml" \
	--bind-address 127.0.0.1 --secure-port 10259
daemon kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$pki/controller-manager.kubeconfig" \
	--authentication-kubeconfig "$pki/controller-manager.kubeconfig" \
	--authorization-kubeconfig "$pki/controller-manager.kubeconfig" \
	--service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
	--use-service-account-credentials --leader-elect=false --bind-address 127.0.0.1 --secure-port 10257 \
	--cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
	--horizontal-pod-autoscaler-sync-period 5s

# --- containerd, with the CRI plugin, runc from Debian and the bridge CNI.
cat >"$STATE/containerd.toml" <<TOML
version = 4
root = "$STATE/containerd"
state = "$RUN/containerd"
imports = []
[plugins.'io.containerd.server.v1.grpc']
  address = "$CONTAINERD_SOCK"
[plugins.'io.containerd.server.v1.ttrpc']
  address = "$CONTAINERD_SOCK.ttrpc"
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "$PAUSE_IMAGE"
[plugins.'io.containerd.cri.v1.runtime']
  # The VM lacks CAP_SYS_RESOURCE: lowering oom_score_adj fails every sandbox.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = []
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  BinaryName = "$(command -v runc)"
  Root = "$RUN/runc"
  SystemdCgroup = false
[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ["/usr/lib/cni"]
  conf_dir = "$STATE/cni/net.d"
[plugins.'io.containerd.internal.v1.opt']
  path = "$STATE/opt"
[plugins.'io.containerd.nri.v1.nri']
  disable = true
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
TOML
cat >"$STATE/cni/net.d/10-userve-node.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "userve-node", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$RUN/cni-ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}
JSON
shims=$(dirname "$(readlink -f "$bin/containerd")")
daemon containerd env PATH="$shims:$PATH" "$bin/containerd" --config "$STATE/containerd.toml"
wait_for containerd 30 "$bin/ctr" --address "$CONTAINERD_SOCK" version
for img in pause coredns busybox userve; do
	out=$("$bin/ctr" --address "$CONTAINERD_SOCK" -n k8s.io images import "$STATE/images/$img.tar" 2>&1) ||
		die "ctr images import $img.tar: $out"
done
say "images imported ($((SECONDS - started))s)"

# --- kubelet and kube-proxy.
cat >"$STATE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: ""
podLogsDir: $STATE/pod-logs
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
YAML
daemon kubelet "$bin/kubelet" --config "$STATE/kubelet.yaml" --kubeconfig "$pki/kubelet.kubeconfig" \
	--root-dir "$STATE/kubelet" --cert-dir "$STATE/kubelet-pki" --hostname-override "$NODE_NAME" \
	--node-ip "$NODE_IP"
cat >"$STATE/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$pki/kube-proxy.kubeconfig"}
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
# conntrack sysctls are host-wide: leave them alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
daemon kube-proxy "$bin/kube-proxy" --config "$STATE/kube-proxy.yaml"
wait_for "node $NODE_NAME Ready" 90 kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
say "node Ready ($((SECONDS - started))s)"

# --- Cluster DNS (CoreDNS, built from its module) and the MongoDB Service.
kubectl apply -f - >/dev/null <<YAML
$(sed -e "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|" -e "s|@DNS_IP@|$DNS_IP|" "$root/hack/node/coredns.yaml")
YAML

# FerretDB on the node IP; pods reach it as mongodb.databases.svc (the
# samples' URI) through a Service without selector.
if [ "$ferretdb" = ferretdb-auth ]; then
	# Authentication on, an administrator set up on first start; the password
	# goes by environment, not on a command line ps shows.
	head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STATE/mongo-admin-password"
	mkdir -p "$STATE/ferretdb-state"
	daemon ferretdb env FERRETDB_SETUP_PASSWORD="$(cat "$STATE/mongo-admin-password")" "$bin/ferretdb-auth" \
		--listen-addr="$NODE_IP:27017" --handler=sqlite --sqlite-url="file:$STATE/ferretdb/" \
		--state-dir="$STATE/ferretdb-state" --debug-addr=- --telemetry=disable --log-level=warn \
		--test-enable-new-auth --setup-database=admin --setup-username=admin
else
	daemon ferretdb "$bin/ferretdb" --listen-addr "$NODE_IP:27017" --sqlite-url "file:$STATE/ferretdb/"
fi
kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: databases}
---
apiVersion: v1
kind: Service
metadata: {name: mongodb, namespace: databases}
spec:
  ports: [{name: mongodb, port: 27017, targetPort: 27017}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: mongodb-node
  namespace: databases
  labels: {kubernetes.io/service-name: mongodb}
addressType: IPv4
ports: [{name: mongodb, port: 27017, protocol: TCP}]
endpoints: [{addresses: ["$NODE_IP"]}]
YAML
wait_for "CoreDNS Ready" 90 kubectl -n kube-system wait --for=condition=Available deploy/coredns --timeout=2s
say "node up in $((SECONDS - started))s (kubeconfig: $KUBECONFIG_ADMIN, run commands with nsenter --net=$NETNS)"
