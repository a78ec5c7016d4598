// Package v1alpha1 holds the UserService API: the custom resource the operator
// reconciles and the manifest `userve serve --config` reads.
//
// +kubebuilder:object:generate=true
// +groupName=miniapp.userve.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of UserService.
	GroupVersion = schema.GroupVersion{Group: "miniapp.userve.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
