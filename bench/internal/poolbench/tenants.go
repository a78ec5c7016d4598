package poolbench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/bench/internal/seed"
	"userve.dev/userve/controllers/tenantdb"
)

// tenant is one pooled tenant as the operator would set it up: its own
// MongoDB user and database, admin token and JWT key, and its Secret in the
// pool's namespace (v1alpha1's pool contract).
type tenant struct {
	namespace, name string
	database        string
	user, password  string
	uri             string // the tenant user's URI (tenantdb.UserURI)
	adminToken      string
	jwtKey          string
}

const (
	poolName = "bench"
	poolNS   = "userve-pools"
)

// newTenant is tenant i, "app-<i>" in namespace "team-<i>". The names
// differ: tenants of one name in several namespaces all claim the short
// Host "<name>", which then routes to none of them (docs/pools.md), and the
// pool warns of it once per Secret, naming every claimant.
func newTenant(i int) *tenant {
	ns := fmt.Sprintf("team-%04d", i)
	return &tenant{namespace: ns, name: fmt.Sprintf("app-%04d", i), database: fmt.Sprintf("pool_%04d", i),
		user: fmt.Sprintf("u_%04d", i), password: randomHex(16),
		adminToken: "admin-" + randomHex(16), jwtKey: "jwt-" + randomHex(24)}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// host is the Host requests for the tenant carry: its Service's name with
// the namespace, one of the forms v1alpha1.TenantHosts lists.
func (t *tenant) host() string { return t.name + "." + t.namespace }

// manifest is the defaulted UserService, JSON, with the custom fields the
// seed fills.
func (t *tenant) manifest() []byte {
	us := &v1alpha1.UserService{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "UserService"},
		ObjectMeta: metav1.ObjectMeta{Namespace: t.namespace, Name: t.name},
	}
	for _, f := range seed.CustomFields {
		us.Spec.Profile.CustomFields = append(us.Spec.Profile.CustomFields, v1alpha1.CustomField{Name: f.Name, Type: v1alpha1.CustomFieldType(f.Type)})
	}
	v1alpha1.SetDefaults(us)
	data, err := json.Marshal(us)
	if err != nil {
		panic(err)
	}
	return data
}

// env is the tenant contract's variables, as its Secret holds them and as
// a dedicated `userve serve` of the same tenant gets them.
func (t *tenant) env() map[string]string {
	return map[string]string{
		v1alpha1.EnvMongoURI:      t.uri,
		v1alpha1.EnvMongoDatabase: t.database,
		v1alpha1.EnvAdminTokens:   t.adminToken,
		v1alpha1.EnvJWTKey:        t.jwtKey,
	}
}

// secret is the tenant's Secret in the pool's namespace.
func (t *tenant) secret() *corev1.Secret {
	data := map[string][]byte{
		v1alpha1.PoolTenantManifestKey: t.manifest(),
		v1alpha1.PoolTenantHostsKey:    []byte(strings.Join(v1alpha1.TenantHosts(t.namespace, t.name, ""), "\n")),
	}
	for k, v := range t.env() {
		data[k] = []byte(v)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: poolNS, Name: v1alpha1.PoolTenantSecretName(poolName, t.namespace, t.name),
			Labels: map[string]string{v1alpha1.PoolLabel: poolName,
				v1alpha1.PoolTenantNamespaceLabel: t.namespace, v1alpha1.PoolTenantNameLabel: t.name}},
		Data: data,
	}
}

// setUp gives every tenant its MongoDB user (as the operator does, through
// its own tenantdb code), its profiles, and its Secret, from several
// workers.
func setUp(ctx context.Context, tenants []*tenant, adminURI string, admin *mongo.Client, kube client.Client, profiles, workers int,
	progress func(done int)) error {
	users := tenantdb.New(0)
	defer users.Close(context.Background())
	gen := seed.New(seed.Config{Profiles: profiles, Seed: 20250101})
	var next, done atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		once.Do(func() { firstErr = err; cancel() })
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(tenants) {
					return
				}
				t := tenants[i]
				u := tenantdb.User{Database: t.database, Name: t.user, Password: t.password}
				if _, err := users.EnsureUser(ctx, adminURI, u, true); err != nil {
					fail(fmt.Errorf("tenant %s: %w", t.host(), err))
					return
				}
				uri, err := tenantdb.UserURI(adminURI, u)
				if err != nil {
					fail(err)
					return
				}
				t.uri = uri
				if err := gen.Insert(ctx, admin.Database(t.database), 1, nil); err != nil {
					fail(fmt.Errorf("tenant %s: seed: %w", t.host(), err))
					return
				}
				if err := kube.Create(ctx, t.secret()); err != nil {
					fail(fmt.Errorf("tenant %s: Secret: %w", t.host(), err))
					return
				}
				if n := done.Add(1); progress != nil {
					progress(int(n))
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}
