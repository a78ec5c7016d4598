package render

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/yaml"

	"userve.dev/userve/api/v1alpha1"
)

// A pooled tenant: its Secret in the pool's namespace (the channel to the
// pool's pods, v1alpha1's pool contract), and in its own namespace a
// selectorless Service (same name, ClusterIP and port) whose endpoints are
// an EndpointSlice mirroring the pool Service's ready endpoints.

const (
	// LabelServiceName ties an EndpointSlice to its Service.
	LabelServiceName = discoveryv1.LabelServiceName
	// LabelEndpointSliceManagedBy keeps the EndpointSlice controllers off
	// a slice; EndpointSliceManager is the operator's value.
	LabelEndpointSliceManagedBy = discoveryv1.LabelManagedBy
	EndpointSliceManager        = "userve-operator"
)

// PoolTenantSecret is what the pool's pods read for a tenant: the server
// manifest (config, the YAML ServerConfig renders, as JSON), every variable
// of the tenant contract under its own name, and the Host names the tenant
// answers to. It is not owned by the tenant (an owner must be in the same
// namespace): the operator deletes it when the tenant leaves the pool or is
// deleted, and finds it by the tenant labels.
func PoolTenantSecret(us *v1alpha1.UserService, pool, namespace string, config []byte, env map[string][]byte) (*corev1.Secret, error) {
	manifest, err := yaml.YAMLToJSON(config)
	if err != nil {
		return nil, fmt.Errorf("server manifest as JSON: %w", err)
	}
	data := map[string][]byte{v1alpha1.PoolTenantManifestKey: manifest}
	for k, v := range env {
		data[k] = v
	}
	var ingress []string
	if in := us.Spec.Ingress; in != nil {
		ingress = append(ingress, in.Host)
	}
	hosts := v1alpha1.TenantHosts(us.Namespace, us.Name, "", ingress...)
	data[v1alpha1.PoolTenantHostsKey] = []byte(strings.Join(hosts, "\n") + "\n")
	l := PoolTenantLabels(pool, us.Namespace, us.Name)
	l[LabelManagedBy] = ManagedBy
	l[LabelWatched] = "true"
	return &corev1.Secret{
		ObjectMeta: metaWithLabels(v1alpha1.PoolTenantSecretName(pool, us.Namespace, us.Name), namespace, l),
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}, nil
}

// PoolTenantLabels find a tenant's Secret in a pool's namespace.
func PoolTenantLabels(pool, namespace, name string) map[string]string {
	return map[string]string{
		v1alpha1.PoolLabel:                pool,
		v1alpha1.PoolTenantNamespaceLabel: namespace,
		v1alpha1.PoolTenantNameLabel:      name,
	}
}

// PooledService is the tenant's Service while a pool serves it: the same
// name, type and port, without a selector, so that its endpoints are the
// operator's EndpointSlice. Its ClusterIP is kept: the API server keeps it
// when the selector goes.
func PooledService(us *v1alpha1.UserService) *corev1.Service {
	s := Service(us)
	s.Spec.Selector = nil
	return s
}

// ReadyEndpoints are the ready endpoints of the pool Service's slices of
// one address type, without their ports (the tenant's slice names its own),
// sorted by first address so that the same endpoints render the same slice.
func ReadyEndpoints(from []discoveryv1.EndpointSlice, addressType discoveryv1.AddressType) []discoveryv1.Endpoint {
	var out []discoveryv1.Endpoint
	for _, s := range from {
		if s.AddressType != addressType {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			if e.Conditions.Terminating != nil && *e.Conditions.Terminating {
				continue
			}
			out = append(out, discoveryv1.Endpoint{
				Addresses:  slices.Clone(e.Addresses),
				Conditions: discoveryv1.EndpointConditions{Ready: ptrTo(true), Serving: ptrTo(true), Terminating: ptrTo(false)},
				TargetRef:  e.TargetRef.DeepCopy(),
				NodeName:   e.NodeName,
				Zone:       e.Zone,
			})
		}
	}
	slices.SortFunc(out, func(a, b discoveryv1.Endpoint) int { return strings.Compare(first(a.Addresses), first(b.Addresses)) })
	return slices.CompactFunc(out, func(a, b discoveryv1.Endpoint) bool { return first(a.Addresses) == first(b.Addresses) })
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// TenantEndpointSlice gives the tenant's selectorless Service the pool's
// ready endpoints, on the port the pool listens on. It is named like the
// tenant (the EndpointSlice controller names its own slices with a random
// suffix) and managed by the operator (no EndpointSlice controller touches
// it).
func TenantEndpointSlice(us *v1alpha1.UserService, addressType discoveryv1.AddressType, endpoints []discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	meta := objectMeta(us, us.Name)
	meta.Labels[LabelServiceName] = us.Name
	meta.Labels[LabelEndpointSliceManagedBy] = EndpointSliceManager
	if endpoints == nil {
		endpoints = []discoveryv1.Endpoint{}
	}
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  meta,
		AddressType: addressType,
		Endpoints:   endpoints,
		Ports: []discoveryv1.EndpointPort{{
			Name: ptrTo(PortName), Port: ptrTo(int32(Port)), Protocol: ptrTo(corev1.ProtocolTCP),
		}},
	}
}
