# Shared by hack/node/*.sh: where the test node lives. Everything it writes is
# under $STATE and $RUN, except the few host paths the kubelet and its helpers
# hard-code (HOST_PATHS), which down.sh removes when up.sh created them.
# shellcheck shell=bash
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=$root/bin
NS=${USERVE_NODE_NS:-userve-node}
NODE_NAME=userve-node
STATE=${USERVE_NODE_STATE:-/var/lib/userve-node}
RUN=${USERVE_NODE_RUN:-/run/userve-node}
NETNS=/run/netns/$NS
NODE_IP=10.211.0.2
PEER_IP=10.211.0.1
POD_CIDR=10.212.0.0/24
SERVICE_CIDR=10.213.0.0/24
KUBERNETES_SVC_IP=10.213.0.1
DNS_IP=10.213.0.10
VETH=un0
VETH_PEER=un1
KUBECONFIG_ADMIN=$STATE/pki/admin.kubeconfig
CONTAINERD_SOCK=$RUN/containerd/containerd.sock
# Images the node imports (no registry is reachable from the node).
PAUSE_IMAGE=userve.test/pause:1
COREDNS_IMAGE=userve.test/coredns:1
BUSYBOX_IMAGE=userve.test/busybox:1
USERVE_IMAGE=userve.test/userve:node
# Host paths that the kubelet, the CNI plugins or containerd's shims write
# whatever their configured roots are.
HOST_PATHS=(/run/netns /var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni /run/containerd /opt/containerd /var/run/nri /etc/cni)
# Host-wide sysctls the kubelet sets (protectKernelDefaults: false).
HOST_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

say() { printf '[node %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { say "FAIL: $*"; exit 1; }

# in_ns CMD...: run CMD in the node's network namespace (only the network:
# ip netns exec would also remount /sys and hide the cgroups).
in_ns() { nsenter --net="$NETNS" "$@"; }

# wait_for WHAT SECONDS CMD...: poll CMD until it succeeds, or fail naming WHAT.
wait_for() {
	local what=$1 limit=$2; shift 2
	local deadline=$((SECONDS + limit))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			die "$what: not ready after ${limit}s"
		fi
		sleep 0.5
	done
}

kubectl() { in_ns "$bin/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
helm() { in_ns env HOME="$STATE/helm-home" "$bin/helm" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
