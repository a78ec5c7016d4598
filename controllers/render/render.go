// Package render builds the objects the operator keeps for one UserService.
// Every function here is pure: the UserService (and what the reconciler has
// read for it) in, a typed object out, so each is unit tested on its own and
// the reconciler only decides when to apply or remove what they return.
// Builders of optional objects return nil when the spec turns them off.
package render

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"userve.dev/userve/api/v1alpha1"
)

const (
	// ManagedBy is the app.kubernetes.io/managed-by label of every object the
	// operator creates; the operator's cache only holds objects carrying it.
	ManagedBy = "userve-operator"

	// AppName is the app.kubernetes.io/name of tenant objects. It differs from
	// the operator's own "userve" so that no tenant selector matches the
	// operator's pods.
	AppName = "userve-server"

	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelManagedBy = "app.kubernetes.io/managed-by"

	// LabelWatched marks the Secrets the operator's cache holds: its own
	// credentials Secrets and the tenants' Secrets it reads, which it labels
	// so that a changed value rolls the pods at once.
	LabelWatched = "miniapp.userve.dev/watched"

	// AnnotationConfigHash on the pod template changes whenever the rendered
	// config or a secret value the pods read changes, which rolls the pods.
	AnnotationConfigHash = "userve.dev/config-hash"

	// ContainerName is the tenant server's container.
	ContainerName = "userve"
	// PortName and Port are the tenant server's HTTP port, in the pod and in
	// the Service.
	PortName = "http"
	Port     = 8080
	// MetricsPortName and MetricsPort are the pods' /metrics listener
	// (userve serve --metrics-listen). The Service does not expose it and the
	// Ingress does not route it: a PodMonitor scrapes the pods by this name.
	MetricsPortName = "metrics"
	MetricsPort     = 9090

	// ConfigKey is the ConfigMap key holding the UserService manifest, and
	// ConfigDir where the pods mount it.
	ConfigKey  = "userservice.yaml"
	ConfigDir  = "/etc/userve"
	ConfigPath = ConfigDir + "/" + ConfigKey

	// Keys of the credentials Secret.
	KeyAdminTokens = "admin-tokens"
	KeyJWTKey      = "jwt-key"
	KeyMongoURI    = "mongo-uri"

	// MaxDatabaseName is the longest database name accepted (MongoDB allows
	// fewer than 64 characters).
	MaxDatabaseName = 63
)

// SelectorLabels select the tenant's pods. They never change for a tenant:
// a Deployment's selector is immutable.
func SelectorLabels(us *v1alpha1.UserService) map[string]string {
	return map[string]string{LabelName: AppName, LabelInstance: us.Name}
}

// Labels of every object of the tenant.
func Labels(us *v1alpha1.UserService) map[string]string {
	l := SelectorLabels(us)
	l[LabelComponent] = "user-service"
	l[LabelPartOf] = "userve"
	l[LabelManagedBy] = ManagedBy
	return l
}

// Selector is the pods' label selector in its string form (status.selector,
// read by the scale subresource).
func Selector(us *v1alpha1.UserService) string {
	return labels.SelectorFromSet(SelectorLabels(us)).String()
}

// Names of the tenant's objects. Everything else is named like the tenant.
func ConfigMapName(us *v1alpha1.UserService) string         { return us.Name + "-config" }
func CredentialsSecretName(us *v1alpha1.UserService) string { return us.Name + "-credentials" }

// OwnerReference makes the tenant the controller of an object, so that the
// garbage collector removes the object with the tenant and the operator is
// told about changes to it.
func OwnerReference(us *v1alpha1.UserService) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{
		APIVersion:         v1alpha1.GroupVersion.String(),
		Kind:               "UserService",
		Name:               us.Name,
		UID:                us.UID,
		Controller:         &yes,
		BlockOwnerDeletion: &yes,
	}
}

func objectMeta(us *v1alpha1.UserService, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            name,
		Namespace:       us.Namespace,
		Labels:          Labels(us),
		OwnerReferences: []metav1.OwnerReference{OwnerReference(us)},
	}
}

// DatabaseName is the tenant's MongoDB database: spec.mongo.database, else
// "<namespace>_<name>" (namespace "default" when empty), as `userve serve`
// computes it.
//
// Default names are reserved for their namespace: an explicit name of the
// form "<namespace>_<name>" (any case: MongoDB refuses names that differ only
// in case) is refused in every other namespace, so that no namespace can
// take the database of a UserService another namespace has yet to create.
// A tenant that already uses such a name (status.database) keeps it.
func DatabaseName(us *v1alpha1.UserService) (string, error) {
	ns := us.Namespace
	if ns == "" {
		ns = "default"
	}
	if d := us.Spec.Mongo.Database; d != "" {
		if owner, ok := ReservedFor(d); ok && owner != ns && us.Status.Database != d {
			return "", fmt.Errorf("spec.mongo.database %q is reserved for namespace %s: names of the form <namespace>_<name> are the default database names of that namespace's UserServices; choose another name, e.g. one starting with %q (a new UserService, since spec.mongo.database is immutable)", d, owner, ns+"_")
		}
		return d, nil
	}
	name := ns + "_" + us.Name
	if len(name) > MaxDatabaseName {
		return "", fmt.Errorf("the default database name %q is longer than %d characters: set spec.mongo.database", name, MaxDatabaseName)
	}
	return name, nil
}

// ReservedFor is the namespace whose default database names include
// database: it has the form "<namespace>_<name>" (compared lower-cased), a
// namespace name (a DNS label, never holding "_") and a UserService name.
func ReservedFor(database string) (string, bool) {
	ns, name, ok := strings.Cut(strings.ToLower(database), "_")
	if !ok || len(validation.IsDNS1123Label(ns)) > 0 || !userServiceName.MatchString(name) {
		return "", false
	}
	return ns, true
}

// userServiceName is the CRD's rule for metadata.name.
var userServiceName = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

// Endpoint is the tenant's base URL: its ingress when it has one, else its
// Service inside the cluster.
func Endpoint(us *v1alpha1.UserService) string {
	if in := us.Spec.Ingress; in != nil && in.Host != "" {
		if in.TLSSecretName != "" {
			return "https://" + in.Host
		}
		return "http://" + in.Host
	}
	return fmt.Sprintf("http://%s.%s.svc:%d", us.Name, us.Namespace, Port)
}

func ptrTo[T any](v T) *T { return &v }

func resourceQuantity(s string) resource.Quantity { return resource.MustParse(s) }

func metaWithLabels(name, namespace string, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels}
}
