package render

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"

	"userve.dev/userve/api/v1alpha1"
)

// SecretLocation is a Secret key anywhere in the cluster: the operator's
// --default-mongo-uri-secret NAMESPACE/NAME/KEY.
type SecretLocation struct {
	Namespace, Name, Key string
}

func (l SecretLocation) String() string { return l.Namespace + "/" + l.Name + "/" + l.Key }

// SecretSources says which Secret key each secret environment variable of
// the tenant server reads. All Secrets are in the tenant's namespace.
type SecretSources struct {
	MongoURI    corev1.SecretKeySelector
	AdminTokens corev1.SecretKeySelector
	JWTKey      corev1.SecretKeySelector
	// Optional are the other Secret keys the spec names (delivery and
	// WeChat secrets), in the contract's order (v1alpha1.TenantSecretRefs).
	Optional []SecretEnv

	// CopyDefaultMongoURI is set when the tenant is on the operator's
	// default MongoDB: the pods read the URI the operator writes into the
	// credentials Secret, the tenant's own database user's (or, with
	// --shared-database-credentials, a copy of the default URI). The
	// default Secret itself never reaches the tenant's namespace.
	CopyDefaultMongoURI bool
}

// SecretEnv is an environment variable read from a Secret key.
type SecretEnv struct {
	Env    string
	Secret corev1.SecretKeySelector
}

// ErrNoMongoURI means the tenant names no MongoDB URI and the operator has no
// default.
var ErrNoMongoURI = errors.New("no MongoDB URI: set spec.mongo.uriSecretRef or start the operator with --default-mongo-uri-secret")

// Sources resolves where the tenant's secrets come from: the Secret keys
// the spec names, else the credentials Secret the operator generates.
// defaultMongo is the operator's --default-mongo-uri-secret, nil when unset.
func Sources(us *v1alpha1.UserService, defaultMongo *SecretLocation) (SecretSources, error) {
	creds := CredentialsSecretName(us)
	src := SecretSources{
		MongoURI:            selector(creds, KeyMongoURI),
		AdminTokens:         selector(creds, KeyAdminTokens),
		JWTKey:              selector(creds, KeyJWTKey),
		CopyDefaultMongoURI: true,
	}
	for _, r := range v1alpha1.TenantSecretRefs(&us.Spec) {
		s := selector(r.Ref.Name, r.Ref.Key)
		switch r.Env {
		case v1alpha1.EnvMongoURI:
			src.MongoURI, src.CopyDefaultMongoURI = s, false
		case v1alpha1.EnvAdminTokens:
			src.AdminTokens = s
		default:
			src.Optional = append(src.Optional, SecretEnv{Env: r.Env, Secret: s})
		}
	}
	if src.CopyDefaultMongoURI && defaultMongo == nil {
		return SecretSources{}, ErrNoMongoURI
	}
	return src, nil
}

// Get is the Secret key variable env reads, if it is one of the optional.
func (s SecretSources) Get(env string) (corev1.SecretKeySelector, bool) {
	for _, o := range s.Optional {
		if o.Env == env {
			return o.Secret, true
		}
	}
	return corev1.SecretKeySelector{}, false
}

func selector(name, key string) corev1.SecretKeySelector {
	return corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
}

// AnnotationRotateCredentials on a UserService asks for a new database
// password: any value not yet handled rotates it once. The credentials
// Secret records the value handled in AnnotationCredentialsRotated.
const (
	AnnotationRotateCredentials  = "miniapp.userve.dev/rotate-credentials"
	AnnotationCredentialsRotated = "miniapp.userve.dev/credentials-rotated"
)

// RotationPending says whether the tenant asks for a rotation that the
// credentials Secret (its annotations, nil when it does not exist) does not
// record as done.
func RotationPending(us *v1alpha1.UserService, secretAnnotations map[string]string) bool {
	want := us.Annotations[AnnotationRotateCredentials]
	return want != "" && secretAnnotations[AnnotationCredentialsRotated] != want
}

// CredentialsSecret is the tenant's generated credentials: the JWT signing
// key, the admin tokens unless spec.adminTokensSecretRef names the tenant's
// own, and the MongoDB URI when mongoURI is not nil (with the rotation
// request it answers, see AnnotationRotateCredentials). Values already in
// existing (the Secret as it is) are kept; missing ones are generated from
// random (crypto/rand.Reader in production). Nothing is ever regenerated,
// since tokens and keys handed out must keep working.
func CredentialsSecret(us *v1alpha1.UserService, existing map[string][]byte, mongoURI []byte, random io.Reader) (*corev1.Secret, error) {
	data := map[string][]byte{}
	keep := func(key string) error {
		if v := existing[key]; len(v) > 0 {
			data[key] = v
			return nil
		}
		v, err := randomToken(random)
		if err != nil {
			return fmt.Errorf("generate %s: %w", key, err)
		}
		data[key] = v
		return nil
	}
	if err := keep(KeyJWTKey); err != nil {
		return nil, err
	}
	if us.Spec.AdminTokensSecretRef == nil {
		if err := keep(KeyAdminTokens); err != nil {
			return nil, err
		}
	}
	if mongoURI != nil {
		data[KeyMongoURI] = mongoURI
	}
	meta := objectMeta(us, CredentialsSecretName(us))
	meta.Labels[LabelWatched] = "true"
	if v := us.Annotations[AnnotationRotateCredentials]; v != "" && mongoURI != nil {
		meta.Annotations = map[string]string{AnnotationCredentialsRotated: v}
	}
	return &corev1.Secret{
		ObjectMeta: meta,
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}, nil
}

// randomToken is 32 random bytes (256 bits) in hex: safe in a comma list,
// an environment variable and an Authorization header.
func randomToken(random io.Reader) ([]byte, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(random, b); err != nil {
		return nil, err
	}
	out := make([]byte, hex.EncodedLen(len(b)))
	hex.Encode(out, b)
	return out, nil
}
