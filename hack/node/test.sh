#!/usr/bin/env bash
# make test-node: brings the node up, runs the checks of test/node against it
# from inside its network namespace, and tears it down whatever happened
# (then checks nothing is left). Skips, saying so, when not root.
source "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then
	echo "test-node: SKIPPED: needs root (it runs containerd and the kubelet); run it as root: sudo make test-node"
	exit 0
fi
started=$SECONDS
# A node left by an interrupted run is torn down first, so every run starts clean.
"$root/hack/node/down.sh"
trap 'rc=$?; "$root/hack/node/down.sh" || rc=1; say "make test-node: $([ $rc = 0 ] && echo PASS || echo FAIL) in $((SECONDS - started))s"; exit $rc' EXIT
"$root/hack/node/up.sh"
cd "$root"
say "running test/node"
admin_password=$(cat "$STATE/mongo-admin-password" 2>/dev/null || true)
in_ns env USERVE_NODE_KUBECONFIG="$KUBECONFIG_ADMIN" USERVE_NODE_IMAGE="$USERVE_IMAGE" \
	USERVE_NODE_BUSYBOX_IMAGE="$BUSYBOX_IMAGE" USERVE_NODE_LOGS="$RUN/logs" USERVE_NODE_HELM_ARGS="${USERVE_NODE_HELM_ARGS:-}" \
	USERVE_NODE_MONGO_ADMIN_PASSWORD="$admin_password" \
	go test -count=1 -timeout 15m ${USERVE_NODE_TEST_FLAGS:--v} ./test/node/
