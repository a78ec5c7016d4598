package controllers

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
	"userve.dev/userve/controllers/tenantdb"
)

// Options configure the operator; `userve operator` fills them from flags.
type Options struct {
	// ServerImage is the tenant image when spec.image is empty.
	ServerImage string
	// DefaultMongoURISecret is used by tenants without spec.mongo.uriSecretRef.
	DefaultMongoURISecret *render.SecretLocation
	// SharedDatabaseCredentials: see UserServiceReconciler.
	SharedDatabaseCredentials bool
	// URISecretGrace: see UserServiceReconciler (default 2m).
	URISecretGrace time.Duration
	// WatchNamespaces limits the operator to these namespaces; empty: all.
	WatchNamespaces []string
	// PoolNamespace is where UserServicePools without spec.namespace run,
	// and cached even outside WatchNamespaces; empty: POD_NAMESPACE.
	PoolNamespace string
	// MaxConcurrentReconciles is how many tenants reconcile at once.
	MaxConcurrentReconciles int

	LeaderElection bool
	// LeaderElectionNamespace holds the Lease; empty: the namespace the
	// operator runs in (POD_NAMESPACE, or the in-cluster service account's).
	LeaderElectionNamespace string

	// MetricsBindAddress and HealthProbeBindAddress: "0" turns them off.
	MetricsBindAddress     string
	HealthProbeBindAddress string
	// PprofBindAddress serves Go's /debug/pprof; "" or "0": off.
	PprofBindAddress string
	// MetricsInsecure serves /metrics over plain HTTP to anyone
	// (--metrics-secure=false). By default it is HTTPS, and every scrape
	// must bring a bearer token that the API server authenticates
	// (TokenReview) and authorizes for GET /metrics (SubjectAccessReview):
	// the metrics-reader ClusterRole grants that.
	MetricsInsecure bool
	// MetricsCertDir holds tls.crt and tls.key for the metrics endpoint
	// (reloaded when they change); empty: a self-signed certificate made
	// in memory at start.
	MetricsCertDir string

	// ResyncInterval re-checks converged tenants (default 5m);
	// RetryInterval tenants waiting for a Secret or their database (30s).
	ResyncInterval time.Duration
	RetryInterval  time.Duration
	// PoolDrain is how long a pool keeps answering for a tenant moving out
	// once its Service no longer points at the pool (default: a dedicated
	// pod's preStop drain, render.PreStopDrainSeconds).
	PoolDrain time.Duration
	// DatabaseTimeout bounds each ping and drop (default 5s).
	DatabaseTimeout time.Duration

	// SkipControllerNameValidation lets tests run several managers in one
	// process.
	SkipControllerNameValidation bool
}

// ParseSecretLocation parses --default-mongo-uri-secret: NAMESPACE/NAME/KEY.
func ParseSecretLocation(s string) (*render.SecretLocation, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%q is not NAMESPACE/NAME/KEY", s)
	}
	l := &render.SecretLocation{Namespace: parts[0], Name: parts[1], Key: parts[2]}
	if errs := validation.IsDNS1123Label(l.Namespace); len(errs) > 0 {
		return nil, fmt.Errorf("namespace %q: %s", l.Namespace, errs[0])
	}
	if errs := validation.IsDNS1123Subdomain(l.Name); len(errs) > 0 {
		return nil, fmt.Errorf("secret name %q: %s", l.Name, errs[0])
	}
	if errs := validation.IsConfigMapKey(l.Key); len(errs) > 0 {
		return nil, fmt.Errorf("secret key %q: %s", l.Key, errs[0])
	}
	return l, nil
}

// ParseNamespaces parses --watch-namespaces: a comma list, empty for all.
func ParseNamespaces(s string) ([]string, error) {
	var out []string
	for _, ns := range strings.Split(s, ",") {
		ns = strings.TrimSpace(ns)
		if ns == "" {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("namespace %q: %s", ns, errs[0])
		}
		out = append(out, ns)
	}
	return out, nil
}

// NewScheme has the built-in kinds and UserService.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// CacheOptions keep the operator's memory proportional to its tenants: the
// namespaces it watches only (and poolNamespace, where pools run by
// default; no UserService there is reconciled), of the kinds it owns only
// the objects it labelled, and no managedFields.
func CacheOptions(watchNamespaces []string, poolNamespace string) cache.Options {
	opts := cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject:         map[client.Object]cache.ByObject{},
	}
	if len(watchNamespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		tenants := map[string]cache.Config{}
		for _, ns := range watchNamespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
			tenants[ns] = cache.Config{}
		}
		if poolNamespace != "" {
			opts.DefaultNamespaces[poolNamespace] = cache.Config{}
		}
		opts.ByObject[&v1alpha1.UserService{}] = cache.ByObject{Namespaces: tenants}
	}
	managed := labels.SelectorFromSet(labels.Set{render.LabelManagedBy: render.ManagedBy})
	// Secrets: the operator's credentials Secrets, the tenants' Secrets it
	// reads and pooled tenants' Secrets, never every Secret of the cluster.
	watched := labels.SelectorFromSet(labels.Set{render.LabelWatched: "true"})
	// Pods: the pools' only (their acknowledgements), never tenants' pods.
	opts.ByObject[&corev1.Pod{}] = cache.ByObject{Label: labels.SelectorFromSet(labels.Set{
		render.LabelManagedBy: render.ManagedBy, render.LabelComponent: render.PoolComponent})}
	for _, obj := range append(objectsOwned(), &rbacv1.Role{}, &rbacv1.RoleBinding{}) {
		if _, ok := obj.(*corev1.Secret); ok {
			opts.ByObject[obj] = cache.ByObject{Label: watched}
			continue
		}
		opts.ByObject[obj] = cache.ByObject{Label: managed}
	}
	return opts
}

// CachedNamespaces are the namespaces CacheOptions caches; nil: all.
func CachedNamespaces(watchNamespaces []string, poolNamespace string) []string {
	if len(watchNamespaces) == 0 {
		return nil
	}
	return append(slices.Clone(watchNamespaces), poolNamespace)
}

// NewManager builds the manager with the UserService controller, health
// checks and the tenants-by-phase metric. Start it with Start(ctx); Close
// the returned pool after it returns.
func NewManager(cfg *rest.Config, o Options) (ctrl.Manager, *tenantdb.Pool, error) {
	if o.ServerImage == "" {
		return nil, nil, errors.New("no server image: set --server-image")
	}
	if o.MaxConcurrentReconciles <= 0 {
		o.MaxConcurrentReconciles = 1
	}
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = 5 * time.Minute
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = 30 * time.Second
	}
	if o.PoolDrain <= 0 {
		o.PoolDrain = render.PreStopDrainSeconds * time.Second
	}
	if o.LeaderElectionNamespace == "" {
		o.LeaderElectionNamespace = os.Getenv(v1alpha1.EnvPodNamespace)
	}
	operatorNamespace := os.Getenv(v1alpha1.EnvPodNamespace)
	scheme := NewScheme()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         CacheOptions(o.WatchNamespaces, o.PoolNamespace),
		Metrics:                       MetricsServerOptions(o),
		HealthProbeBindAddress:        o.HealthProbeBindAddress,
		PprofBindAddress:              o.PprofBindAddress,
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              "userve-operator.miniapp.userve.dev",
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("create manager: %w", err)
	}
	pool := tenantdb.New(o.DatabaseTimeout)
	r := &UserServiceReconciler{
		Client:                    mgr.GetClient(),
		APIReader:                 mgr.GetAPIReader(),
		Scheme:                    scheme,
		Recorder:                  mgr.GetEventRecorder("userve-operator"),
		Databases:                 pool,
		ServerImage:               o.ServerImage,
		DefaultMongoURISecret:     o.DefaultMongoURISecret,
		SharedDatabaseCredentials: o.SharedDatabaseCredentials,
		URISecretGrace:            o.URISecretGrace,
		Random:                    rand.Reader,
		ResyncInterval:            o.ResyncInterval,
		RetryInterval:             o.RetryInterval,
		PoolNamespace:             o.PoolNamespace,
		PoolDrain:                 o.PoolDrain,
		OperatorNamespace:         operatorNamespace,
	}
	copts := controller.Options{MaxConcurrentReconciles: o.MaxConcurrentReconciles}
	if o.SkipControllerNameValidation {
		yes := true
		copts.SkipNameValidation = &yes
	}
	if err := r.SetupWithManager(context.Background(), mgr, copts); err != nil {
		return nil, nil, fmt.Errorf("set up the controller: %w", err)
	}
	pools := &PoolReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Scheme: scheme,
		Recorder:    mgr.GetEventRecorder("userve-operator"),
		ServerImage: o.ServerImage, DefaultNamespace: o.PoolNamespace, OperatorNamespace: operatorNamespace,
		CachedNamespaces: CachedNamespaces(o.WatchNamespaces, o.PoolNamespace),
	}
	if err := pools.SetupWithManager(mgr, copts); err != nil {
		return nil, nil, fmt.Errorf("set up the pool controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, nil, err
	}
	if err := mgr.AddReadyzCheck("caches", cachesSynced(mgr.GetCache())); err != nil {
		return nil, nil, err
	}
	registerTenantMetrics(mgr.GetCache())
	return mgr, pool, nil
}

// MetricsServerOptions serve the operator's metrics as kubebuilder
// scaffolds them: HTTPS with authentication and authorization delegated to
// the API server (metricsAuthFilter), HTTP/1.1 only (HTTP/2's
// rapid-reset and stream floods are not worth it for a scrape), unless
// o.MetricsInsecure.
func MetricsServerOptions(o Options) metricsserver.Options {
	opts := metricsserver.Options{BindAddress: o.MetricsBindAddress}
	if o.MetricsInsecure {
		return opts
	}
	opts.SecureServing = true
	opts.FilterProvider = metricsAuthFilter
	opts.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	if o.MetricsCertDir != "" {
		opts.CertDir, opts.CertName, opts.KeyName = o.MetricsCertDir, "tls.crt", "tls.key"
	}
	return opts
}

// cachesSynced is ready once the informers hold the cluster's state.
func cachesSynced(c cache.Cache) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !c.WaitForCacheSync(ctx) {
			return errors.New("caches not synced yet")
		}
		return nil
	}
}
