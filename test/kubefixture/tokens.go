package kubefixture

import (
	"context"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ServiceAccountToken creates the ServiceAccount namespace/name (if it is
// not there), binds it to each ClusterRole named, and returns a token the
// API server issued for it (TokenRequest), as a pod of that account would
// hold. The API server authenticates it like any in-cluster token.
func (e *Env) ServiceAccountToken(ctx context.Context, namespace, name string, clusterRoles ...string) (string, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if err := e.Client.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("create ServiceAccount %s/%s: %w", namespace, name, err)
	}
	for _, role := range clusterRoles {
		b := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: namespace + "-" + name + "-" + role},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}},
		}
		if err := e.Client.Create(ctx, b); err != nil && !apierrors.IsAlreadyExists(err) {
			return "", fmt.Errorf("bind %s/%s to %s: %w", namespace, name, role, err)
		}
	}
	expiry := int64(3600)
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}
	if err := e.Client.SubResource("token").Create(ctx, sa, tr); err != nil {
		return "", fmt.Errorf("token for %s/%s: %w", namespace, name, err)
	}
	if tr.Status.Token == "" {
		return "", fmt.Errorf("token for %s/%s: the API server returned none", namespace, name)
	}
	return tr.Status.Token, nil
}
