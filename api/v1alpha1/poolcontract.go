package v1alpha1

import (
	"net"
	"strings"
)

// The pool contract: how the operator hands a pooled tenant to the pool's
// pods. Each tenant placed in a UserServicePool gets one Secret in the
// pool's namespace (PoolTenantSecretName), labelled PoolLabel=<pool>, that
// holds everything `userve serve` would get from its ConfigMap and
// environment: the manifest under PoolTenantManifestKey, every variable of
// the tenant contract (Env*) under its own name, and the Host names the
// tenant answers to under PoolTenantHostsKey. The pool's pods watch those
// Secrets with a label selector, through a Role in their own namespace; they
// never read a tenant's namespace.

// Environment of a pool pod, from the downward API: its namespace (where
// its tenants' Secrets are) and its Pod's name (which it annotates with
// PoolAppliedAnnotation).
const (
	EnvPodNamespace = "POD_NAMESPACE"
	EnvPodName      = "POD_NAME"
)

// Labels of a pooled tenant's Secret in the pool's namespace.
const (
	PoolLabel                 = "miniapp.userve.dev/pool"
	PoolTenantNamespaceLabel  = "miniapp.userve.dev/tenant-namespace"
	PoolTenantNameLabel       = "miniapp.userve.dev/tenant-name"
	PoolTenantManifestKey     = "userservice.json" // the defaulted UserService, JSON
	PoolTenantHostsKey        = "hosts"            // one Host name per line (TenantHosts)
	DefaultClusterDomain      = "cluster.local"
	PoolTenantSecretNameLimit = 253
)

// PoolTenantDrainingAnnotation is on a tenant's Secret while the tenant
// moves out: its Service no longer points at the pool's pods, but clients
// may still hold connections to them (kube-proxy keeps an established
// connection on the endpoint it chose). The pool keeps answering the tenant
// and closes each such connection after its response ("Connection: close"),
// so the client's next request is routed anew, to the tenant's own pods.
const PoolTenantDrainingAnnotation = "miniapp.userve.dev/draining"

// PoolTenantSecretName names a tenant's Secret in its pool's namespace:
// "<pool>.<namespace>.<name>". Namespaces and UserService names are DNS
// labels (no dots), so the name is unique per pool and tenant, and at most
// 3*63+2 characters.
func PoolTenantSecretName(pool, namespace, name string) string {
	return pool + "." + namespace + "." + name
}

// TenantHosts lists the Host names a tenant answers to, lower case, without
// port: its Service's DNS name in every form an in-cluster client may use
// (short, with the namespace, ".svc", ".svc.<clusterDomain>") and its
// Ingress hosts. clusterDomain "" means DefaultClusterDomain.
func TenantHosts(namespace, service, clusterDomain string, ingressHosts ...string) []string {
	if clusterDomain == "" {
		clusterDomain = DefaultClusterDomain
	}
	short := service + "." + namespace
	hosts := []string{service, short, short + ".svc", short + ".svc." + clusterDomain}
	for _, h := range ingressHosts {
		if h = NormalizeHost(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// NormalizeHost is the form TenantHosts lists and a pool looks up: the
// request's Host without port, lower case, without a trailing dot. An
// IP literal or an empty Host gives "" (it names no tenant).
func NormalizeHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
	if host == "" || net.ParseIP(strings.Trim(host, "[]")) != nil {
		return ""
	}
	return host
}
