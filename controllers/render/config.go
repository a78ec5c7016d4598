package render

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"userve.dev/userve/api/v1alpha1"
)

// serverManifest is the UserService manifest `userve serve --config` reads.
// It carries only the parts of the spec the server uses, so that scaling,
// scheduling or image changes do not change the config hash and roll pods
// for nothing.
type serverManifest struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   serverMetadata `json:"metadata"`
	Spec       serverSpec     `json:"spec"`
}

type serverMetadata struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
}

type serverSpec struct {
	Mongo        serverMongo               `json:"mongo"`
	API          v1alpha1.APISpec          `json:"api"`
	Profile      v1alpha1.ProfileSpec      `json:"profile,omitzero"`
	Verification v1alpha1.VerificationSpec `json:"verification"`
	WeChat       *v1alpha1.WeChatSpec      `json:"wechat,omitempty"`
	Events       v1alpha1.EventsSpec       `json:"events,omitzero"`
}

type serverMongo struct {
	Database string `json:"database"`
}

// ServerConfig renders the tenant's server configuration: a UserService
// manifest (YAML) with the spec's api, profile and verification, every
// default filled in, and the database in use.
func ServerConfig(us *v1alpha1.UserService, database string) ([]byte, error) {
	defaulted := us.DeepCopy()
	v1alpha1.SetDefaults(defaulted)
	s := defaulted.Spec
	return yaml.Marshal(serverManifest{
		APIVersion: v1alpha1.GroupVersion.String(),
		Kind:       "UserService",
		Metadata:   serverMetadata{Name: us.Name, Namespace: us.Namespace},
		Spec: serverSpec{
			Mongo:        serverMongo{Database: database},
			API:          s.API,
			Profile:      s.Profile,
			Verification: s.Verification,
			WeChat:       s.WeChat,
			Events:       s.Events,
		},
	})
}

// ConfigMap holds the rendered server configuration under ConfigKey.
func ConfigMap(us *v1alpha1.UserService, config []byte) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: objectMeta(us, ConfigMapName(us)),
		Data:       map[string]string{ConfigKey: string(config)},
	}
}

// ConfigHash digests the server configuration and the secret values the
// pods read (by environment variable name), for AnnotationConfigHash.
func ConfigHash(config []byte, secrets map[string][]byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "config %d\n", len(config))
	h.Write(config)
	names := make([]string, 0, len(secrets))
	for name := range secrets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		// Lengths keep the encoding unambiguous.
		fmt.Fprintf(h, "\n%s %d\n", name, len(secrets[name]))
		h.Write(secrets[name])
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}
