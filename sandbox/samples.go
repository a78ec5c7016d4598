package sandbox

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
	"userve.dev/userve/controllers/tenantdb"
)

// FieldManager names the sandbox in managedFields.
const FieldManager = "userve-dev"

// readSamples reads every manifest in dir and its subdirectories (*.yaml,
// *.yml, *.json; several documents per file allowed; config/samples/pools
// holds the pool samples), skipping kustomization files, in the order they
// should be applied: namespaces, then Secrets and ConfigMaps, then the rest
// (UserServicePools, UserServices), each group by path.
func readSamples(dir string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := e.Name()
		ext := filepath.Ext(name)
		if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") ||
			strings.TrimSuffix(name, ext) == "kustomization" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		docs, err := decodeManifests(data)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		objs = append(objs, docs...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	rank := func(o *unstructured.Unstructured) int {
		switch o.GetKind() {
		case "Namespace":
			return 0
		case "Secret", "ConfigMap":
			return 1
		}
		return 2
	}
	sort.SliceStable(objs, func(i, j int) bool { return rank(objs[i]) < rank(objs[j]) })
	return objs, nil
}

// decodeManifests splits a YAML (or JSON) stream into objects; empty
// documents are skipped, and a document without kind or name is an error.
func decodeManifests(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for i := 1; ; i++ {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetAPIVersion() == "" || u.GetKind() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("document %d: apiVersion, kind and metadata.name are required", i)
		}
		out = append(out, u)
	}
}

// localizeSecrets adapts sample Secrets to the sandbox: stringData becomes
// data (server-side apply handles it better), and a MongoDB URI naming an
// in-cluster host (*.svc, *.svc.cluster.local), which cannot be reached from
// this machine, is replaced by the sandbox's MongoDB. It returns one note
// per replaced URI, and the replaced values by "namespace/secret/key".
func localizeSecrets(objs []*unstructured.Unstructured, mongoURI string) ([]string, map[string]string, error) {
	var notes []string
	replaced := map[string]string{}
	for _, o := range objs {
		if o.GetKind() != "Secret" || o.GetAPIVersion() != "v1" {
			continue
		}
		data, _, err := unstructured.NestedMap(o.Object, "data")
		if err != nil {
			return nil, nil, fmt.Errorf("secret %s: data: %w", o.GetName(), err)
		}
		if data == nil {
			data = map[string]any{}
		}
		stringData, _, err := unstructured.NestedStringMap(o.Object, "stringData")
		if err != nil {
			return nil, nil, fmt.Errorf("secret %s: stringData: %w", o.GetName(), err)
		}
		for k, v := range stringData {
			data[k] = base64.StdEncoding.EncodeToString([]byte(v))
		}
		unstructured.RemoveNestedField(o.Object, "stringData")
		for _, k := range sortedKeys(data) {
			s, ok := data[k].(string)
			if !ok {
				return nil, nil, fmt.Errorf("secret %s: data.%s is not a string", o.GetName(), k)
			}
			raw, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, nil, fmt.Errorf("secret %s: data.%s is not base64: %w", o.GetName(), k, err)
			}
			if host, inCluster := inClusterMongoURI(string(raw)); inCluster {
				data[k] = base64.StdEncoding.EncodeToString([]byte(mongoURI))
				replaced[o.GetNamespace()+"/"+o.GetName()+"/"+k] = string(raw)
				notes = append(notes, fmt.Sprintf("Secret %s key %s: %s is a cluster address; using the sandbox MongoDB instead",
					o.GetName(), k, host))
			}
		}
		if len(data) > 0 {
			if err := unstructured.SetNestedMap(o.Object, data, "data"); err != nil {
				return nil, nil, err
			}
		}
	}
	return notes, replaced, nil
}

// ownSampleUsers gives each sample tenant whose own MongoDB URI was replaced
// by the sandbox's a database user of its own, as a platform team would:
// the user and password of the sample's URI, defined on the tenant's
// database, and the Secret then holds that user's URI, not the sandbox
// administrator's. It returns one note per user.
func ownSampleUsers(ctx context.Context, objs []*unstructured.Unstructured, replaced map[string]string, adminURI string, pool *tenantdb.Pool) ([]string, error) {
	secrets := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if o.GetKind() == "Secret" {
			secrets[o.GetNamespace()+"/"+o.GetName()] = o
		}
	}
	var notes []string
	for _, o := range objs {
		if o.GetKind() != "UserService" {
			continue
		}
		var us v1alpha1.UserService
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &us); err != nil {
			return nil, fmt.Errorf("UserService %s: %w", o.GetName(), err)
		}
		ref := us.Spec.Mongo.URISecretRef
		if ref == nil {
			continue
		}
		original, ok := replaced[us.Namespace+"/"+ref.Name+"/"+ref.Key]
		secret := secrets[us.Namespace+"/"+ref.Name]
		if !ok || secret == nil {
			continue
		}
		name, password, ok := tenantdb.Credentials(original)
		if !ok || name == "" || password == "" {
			continue
		}
		database, err := render.DatabaseName(&us)
		if err != nil {
			return nil, fmt.Errorf("UserService %s: %w", us.Name, err)
		}
		u := tenantdb.User{Database: database, Name: name, Password: password}
		if _, err := pool.EnsureUser(ctx, adminURI, u, true); err != nil {
			return nil, fmt.Errorf("UserService %s: %w", us.Name, err)
		}
		uri, err := tenantdb.UserURI(adminURI, u)
		if err != nil {
			return nil, err
		}
		if err := unstructured.SetNestedField(secret.Object, base64.StdEncoding.EncodeToString([]byte(uri)), "data", ref.Key); err != nil {
			return nil, err
		}
		notes = append(notes, fmt.Sprintf("Secret %s key %s: MongoDB user %s made on the sandbox MongoDB for database %s (the tenant's own, as a platform team would)",
			ref.Name, ref.Key, name, database))
	}
	return notes, nil
}

// inClusterMongoURI reports whether s is a MongoDB URI whose hosts are
// cluster DNS names, and the host part.
func inClusterMongoURI(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "mongodb://") && !strings.HasPrefix(s, "mongodb+srv://") {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", false
	}
	for _, h := range strings.Split(u.Host, ",") {
		name := strings.ToLower(h)
		if i := strings.LastIndexByte(name, ':'); i >= 0 {
			name = name[:i]
		}
		if strings.HasSuffix(name, ".svc") || strings.HasSuffix(name, ".svc.cluster.local") {
			return u.Host, true
		}
	}
	return "", false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// applySamples applies objs with server-side apply (as `kubectl apply
// --server-side --force-conflicts` would), into namespace "default" unless
// they name one. It returns one line per object: "UserService default/acme created".
func applySamples(ctx context.Context, c client.Client, objs []*unstructured.Unstructured) ([]string, error) {
	var lines []string
	for _, o := range objs {
		namespaced, err := c.IsObjectNamespaced(o)
		if err != nil {
			return lines, fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
		}
		if namespaced && o.GetNamespace() == "" {
			o.SetNamespace("default")
		}
		id := o.GetName()
		if namespaced {
			id = o.GetNamespace() + "/" + id
		}
		existing := &unstructured.Unstructured{}
		existing.SetGroupVersionKind(o.GroupVersionKind())
		getErr := c.Get(ctx, client.ObjectKeyFromObject(o), existing)
		if getErr != nil && !apierrors.IsNotFound(getErr) {
			return lines, fmt.Errorf("%s %s: %w", o.GetKind(), id, getErr)
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
			return lines, fmt.Errorf("apply %s %s: %w", o.GetKind(), id, err)
		}
		verb := "unchanged"
		switch {
		case apierrors.IsNotFound(getErr):
			verb = "created"
		case !sameContent(existing, o):
			verb = "configured"
		}
		lines = append(lines, fmt.Sprintf("%s %s %s", o.GetKind(), id, verb))
	}
	return lines, nil
}

// sameContent compares two versions of an object without the bookkeeping
// every write changes (an apply that only touches managedFields is no change).
func sameContent(a, b *unstructured.Unstructured) bool {
	strip := func(u *unstructured.Unstructured) map[string]any {
		c := u.DeepCopy()
		for _, f := range []string{"managedFields", "resourceVersion", "generation"} {
			unstructured.RemoveNestedField(c.Object, "metadata", f)
		}
		return c.Object
	}
	return equality.Semantic.DeepEqual(strip(a), strip(b))
}
