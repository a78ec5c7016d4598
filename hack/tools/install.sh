#!/usr/bin/env bash
# Builds the named tools into a per-version cache outside the clone and links
# them into bin/. A tool whose cache entry exists is only re-linked, so a fresh
# clone on a warm machine pays nothing and only a new machine builds cold.
#
#   hack/tools/install.sh [kube-apiserver kubectl etcd ferretdb ferretdb-auth controller-gen helm mkimage promtool oapi-codegen]
#
# The test node (hack/node, make test-node) also builds, by name: containerd
# (with ctr and the runc shim), kubelet, kube-scheduler, kube-controller-manager,
# kube-proxy, coredns, pause and wget.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
tools="$root/hack/tools"
bin="$root/bin"
cache=${USERVE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/userve/tools}

CONTROLLER_GEN_VERSION=v0.23.0
HELM_VERSION=v3.22.0

mkdir -p "$bin" "$cache"
export CGO_ENABLED=0 GOFLAGS=-trimpath

say() { printf '[tools] %s\n' "$*" >&2; }

# key names a build by what goes into it: the Go toolchain plus the given text
# (a version, or the hash of a tools module's sources).
key() { printf '%s %s' "$(go env GOVERSION)" "$*" | sha256sum | cut -c1-16; }

module_hash() { (cd "$tools/$1" && cat go.mod go.sum ./*.go 2>/dev/null | sha256sum | cut -c1-16); }

# link NAME DIR: point bin/NAME at DIR/NAME, reporting only a change.
link() {
	local name=$1 dir=$2
	if [ "$(readlink "$bin/$name" 2>/dev/null)" != "$dir/$name" ]; then
		ln -sfn "$dir/$name" "$bin/$name"
		say "$name -> bin/$name"
	fi
}

# build NAME KEY CMD...: run CMD with $out set to a fresh cache dir unless the
# entry is already there; then link it.
build() {
	local name=$1 k=$2; shift 2
	local dir="$cache/$name-$k"
	if [ ! -x "$dir/$name" ]; then
		local started=$SECONDS
		say "building $name (cold build; this can take minutes)..."
		rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
		out="$dir.tmp" "$@"
		rm -rf "$dir" && mv "$dir.tmp" "$dir"
		say "built $name in $((SECONDS - started))s"
	fi
	link "$name" "$dir"
}

kube_version() { (cd "$tools/kubernetes" && go list -m -f '{{.Version}}' k8s.io/kubernetes); }


build_kube() { # $1: the cmd under k8s.io/kubernetes; $2: the tools module (default kubernetes)
	local v minor
	v=$(kube_version)
	minor=$(echo "$v" | cut -d. -f2)
	# hack/tools/kubenode must pin the same release: one cluster, one version.
	if [ "$(cd "$tools/${2:-kubernetes}" && go list -m -f '{{.Version}}' k8s.io/kubernetes)" != "$v" ]; then
		say "hack/tools/${2:-kubernetes} pins another k8s.io/kubernetes than hack/tools/kubernetes ($v)" && return 1
	fi
	(cd "$tools/${2:-kubernetes}" && go build -ldflags "-s -w \
		-X k8s.io/component-base/version.gitVersion=$v \
		-X k8s.io/component-base/version.gitMajor=1 \
		-X k8s.io/component-base/version.gitMinor=$minor \
		-X k8s.io/component-base/version.gitTreeState=clean" \
		-o "$out/$1" "k8s.io/kubernetes/cmd/$1")
}

build_package() { # $1: a tools module, $2: the tool, $3: its main package (pinned by the module)
	(cd "$tools/$1" && go build -ldflags "-s -w" -o "$out/$2" "$3")
}

build_module() { # $1: a tools module whose main package is its root
	(cd "$tools/$1" && go build -ldflags "-s -w" -o "$out/$1" .)
}

# build_ferretdb_auth builds FerretDB's own cmd/ferretdb, the only entry point
# that enables its (experimental) SCRAM authentication and user commands. That
# command embeds build/version/version.txt, which only FerretDB's release build
# writes, so it runs from a copy of the module with that one file added.
build_ferretdb_auth() {
	local mod=github.com/FerretDB/FerretDB src version tmp
	src=$(cd "$tools/ferretdb-auth" && go mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	version=$(cd "$tools/ferretdb-auth" && go list -m -f '{{.Version}}' "$mod")
	tmp=$(mktemp -d)
	cp -r "$src" "$tmp/FerretDB" && chmod -R u+w "$tmp/FerretDB"
	printf '%s' "$version" >"$tmp/FerretDB/build/version/version.txt"
	mkdir "$tmp/tool" && cp "$tools/ferretdb-auth/go.mod" "$tools/ferretdb-auth/go.sum" "$tmp/tool/"
	(cd "$tmp/tool" && go mod edit -replace "$mod=../FerretDB" &&
		go build -ldflags "-s -w" -o "$out/ferretdb-auth" "$mod/cmd/ferretdb") || { rm -rf "$tmp"; return 1; }
	rm -rf "$tmp"
}

# build_containerd: containerd, ctr and the runc shim of one release. Static
# (CGO_ENABLED=0); the tags drop the snapshotters that need cgo or host tools.
build_containerd() {
	(cd "$tools/containerd" && for cmd in containerd ctr containerd-shim-runc-v2; do
		go build -tags "no_btrfs no_devmapper no_zfs" -ldflags "-s -w" -o "$out/$cmd" \
			"github.com/containerd/containerd/v2/cmd/$cmd" || exit 1
	done)
}

go_install() { # $1: package@version
	GOBIN="$out" go install -ldflags "-s -w" "$1"
}

install_tool() {
	case $1 in
	kube-apiserver | kubectl) build "$1" "$(key "$1" "$(module_hash kubernetes)")" build_kube "$1" ;;
	kubelet | kube-scheduler | kube-controller-manager | kube-proxy)
		build "$1" "$(key "$1" "$(module_hash kubenode)")" build_kube "$1" kubenode
		;;
	containerd)
		build "$1" "$(key "$1" "$(module_hash containerd)")" build_containerd
		for cmd in ctr containerd-shim-runc-v2; do link "$cmd" "$(readlink "$bin/containerd" | xargs dirname)"; done
		;;
	etcd | ferretdb | mkimage | pause | coredns | wget) build "$1" "$(key "$1" "$(module_hash "$1")")" build_module "$1" ;;
	ferretdb-auth) build "$1" "$(key "$1" "$(module_hash "$1")")" build_ferretdb_auth ;;
	controller-gen) build "$1" "$(key "$1" $CONTROLLER_GEN_VERSION)" go_install "sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_GEN_VERSION" ;;
	promtool) build "$1" "$(key "$1" "$(module_hash promtool)")" build_package promtool promtool github.com/prometheus/prometheus/cmd/promtool ;;
	oapi-codegen) build "$1" "$(key "$1" "$(module_hash oapi-codegen)")" build_package oapi-codegen oapi-codegen github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen ;;
	helm) build "$1" "$(key "$1" $HELM_VERSION)" go_install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" ;;
	*) say "unknown tool: $1" && exit 2 ;;
	esac
}

for t in "${@:-etcd ferretdb ferretdb-auth controller-gen kube-apiserver kubectl helm mkimage promtool oapi-codegen}"; do
	for name in $t; do install_tool "$name"; done
done
