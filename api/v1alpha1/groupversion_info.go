// Package v1alpha1 holds the UserService API: the custom resource the operator
// reconciles and the manifest `userve serve --config` reads.
//
// +kubebuilder:object:generate=true
// +groupName=miniapp.userve.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of UserService.
	GroupVersion = schema.GroupVersion{Group: "miniapp.userve.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types with a runtime.Scheme. It is
	// apimachinery's builder, not controller-runtime's: the tenant server
	// (bin/userve-serve) reads these types and links no controller-runtime.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers every kind of the group, as controller-runtime's
// scheme.Builder would: the kinds and the meta types (ListOptions...) of
// the group-version.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&UserService{}, &UserServiceList{},
		&UserServicePool{}, &UserServicePoolList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
