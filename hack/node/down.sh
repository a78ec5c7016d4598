#!/usr/bin/env bash
# Tears down what hack/node/up.sh started, even half-way: the processes it
# started (by pid), every pod process and shim, every mount under its state,
# the network namespace, the kubepods cgroups, the host paths it created, and
# the host-wide sysctls the kubelet changed. Then checks that nothing is left
# and fails naming what is.
source "$(dirname "$0")/lib.sh"
set +e

[ "$(id -u)" = 0 ] || die "the node needs root"
[ -d "$RUN" ] || [ -e "$NETNS" ] || [ -d "$STATE" ] || { say "no node to tear down"; exit 0; }

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { cat "$RUN/pids/$1" 2>/dev/null; }

# stop NAME [GRACE]: SIGTERM the daemon, SIGKILL it after GRACE seconds.
stop() {
	local pid i
	pid=$(pid_of "$1") || return 0
	alive "$pid" || return 0
	kill -TERM "$pid"
	for ((i = 0; i < ${2:-10} * 10; i++)); do alive "$pid" || return 0; sleep 0.1; done
	say "$1 ($pid) ignored SIGTERM for ${2:-10}s: SIGKILL"
	kill -KILL "$pid"
	for ((i = 0; i < 50; i++)); do alive "$pid" || return 0; sleep 0.1; done
}

kubepods_cgroups() { find /sys/fs/cgroup/*/kubepods -depth -type d 2>/dev/null; }
# Processes of pods, wherever the kubelet put them.
pod_pids() { kubepods_cgroups | while read -r c; do cat "$c/cgroup.procs" 2>/dev/null; done | sort -un; }
# containerd's shims (reparented away from containerd): the processes whose
# command line names our containerd socket.
shim_pids() {
	# [.] keeps grep's own command line from matching.
	grep -lsE -- "${CONTAINERD_SOCK%.sock}[.]sock" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3
}
our_mounts() { findmnt -rn -o TARGET | grep -E "^($STATE|$RUN)(/|$)" | sort -r; }

# The kubelet first, so that it restarts nothing; then the pods; then the rest.
stop kubelet 10
for pid in $(pod_pids); do kill -KILL "$pid" 2>/dev/null; done
for pid in $(shim_pids); do kill -KILL "$pid" 2>/dev/null; done
for name in kube-proxy containerd ferretdb kube-scheduler kube-controller-manager; do stop "$name" 10; done
# kube-apiserver waits out its shutdown delay; etcd goes last.
stop kube-apiserver 10
stop etcd 10
for i in $(seq 50); do [ -z "$(pod_pids)$(shim_pids)" ] && break; sleep 0.1; done

# Mounts: pod volumes, overlay rootfs, the pods' netns files.
for m in $(our_mounts); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
[ -e "$NETNS" ] && { ip netns del "$NS" 2>/dev/null || { umount -l "$NETNS" 2>/dev/null; rm -f "$NETNS"; }; }
# The kubelet's cgroups, leaves first, in every hierarchy, only if up.sh found none.
if [ -f "$RUN/created-cgroups" ]; then
	while read -r c; do
		[ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
	done <"$RUN/created-cgroups"
fi
# Host-wide sysctls back as they were.
if [ -f "$RUN/saved-sysctls" ]; then
	while IFS= read -r kv; do sysctl -qw "$kv" >/dev/null; done <"$RUN/saved-sysctls"
fi
saved_sysctls=$(cat "$RUN/saved-sysctls" 2>/dev/null)
created_paths=$(cat "$RUN/created-host-paths" 2>/dev/null)
created_cgroups=$(cat "$RUN/created-cgroups" 2>/dev/null)
pids=$(cat "$RUN"/pids/* 2>/dev/null)
for p in $created_paths; do
	for m in $(findmnt -rn -o TARGET | grep -E "^$p(/|$)" | sort -r); do umount -l "$m"; done
	rm -rf "$p"
done
rm -rf "$STATE" "$RUN"

# Check: nothing left.
left=()
for pid in $pids; do alive "$pid" && left+=("process $pid ($(tr '\0' ' ' 2>/dev/null </proc/"$pid"/cmdline | cut -c1-60))"); done
for pid in $(shim_pids); do left+=("shim $pid"); done
for m in $(findmnt -rn -o TARGET | grep -E "^($STATE|$RUN|$NETNS)(/|$)"); do left+=("mount $m"); done
[ -e "$NETNS" ] && left+=("netns $NETNS")
for c in $created_cgroups; do [ -d "$c" ] && left+=("cgroup $c"); done
for p in $created_paths "$STATE" "$RUN"; do [ -e "$p" ] && left+=("path $p"); done
for kv in $saved_sysctls; do
	[ "$(sysctl -n "${kv%%=*}")" = "${kv#*=}" ] || left+=("sysctl ${kv%%=*}=$(sysctl -n "${kv%%=*}") (was ${kv#*=})")
done
if ((${#left[@]})); then
	printf '[node] left behind: %s\n' "${left[@]}" >&2
	exit 1
fi
say "torn down: no process, mount, netns, cgroup, host path or sysctl change left"
