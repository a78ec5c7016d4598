package pool

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/server/config"
)

// tenantConf is what a tenant's Secret says: its configuration (or why it
// has none) and the hosts it answers to.
type tenantConf struct {
	cfg    *config.Config
	err    error // a broken manifest or environment: the tenant answers 503
	hosts  []string
	digest [sha256.Size]byte // of the Secret's data: an unchanged Secret rebuilds nothing
}

// confFromSecret reads a tenant's Secret (v1alpha1's pool contract): the
// manifest under PoolTenantManifestKey, every variable of the tenant
// contract under its own name (only the Secret's: the pool's own
// environment never reaches a tenant), the hosts one per line. The
// tenant's Service names (v1alpha1.TenantHosts with the pool's cluster
// domain) are added to the listed hosts, so that they route even if the
// operator was told another cluster domain.
func confFromSecret(s *corev1.Secret, clusterDomain string) *tenantConf {
	c := &tenantConf{digest: digestData(s.Data)}
	ns, name := s.Labels[v1alpha1.PoolTenantNamespaceLabel], s.Labels[v1alpha1.PoolTenantNameLabel]
	defer func() {
		var service []string
		if ns != "" && name != "" {
			service = v1alpha1.TenantHosts(ns, name, clusterDomain)
		}
		c.hosts = parseHosts(s.Data[v1alpha1.PoolTenantHostsKey], service)
	}()
	manifest, ok := s.Data[v1alpha1.PoolTenantManifestKey]
	if !ok {
		c.err = errors.New("the Secret has no " + v1alpha1.PoolTenantManifestKey)
		return c
	}
	us, err := config.ParseManifest(manifest)
	if err != nil {
		c.err = err
		return c
	}
	if ns == "" || name == "" {
		ns, name = us.Namespace, us.Name
	}
	c.cfg, c.err = config.FromManifest(us, func(k string) string { return string(s.Data[k]) })
	return c
}

// parseHosts reads one Host name per line, then adds more, normalized,
// without repeats. What is not a DNS name after normalizing (a blank line,
// an IP, stray characters) is left out: no request's Host could match it.
func parseHosts(data []byte, more []string) []string {
	var hosts []string
	add := func(h string) {
		h = v1alpha1.NormalizeHost(h)
		if h != "" && len(validation.IsDNS1123Subdomain(h)) == 0 && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		add(sc.Text())
	}
	for _, h := range more {
		add(h)
	}
	return hosts
}

func digestData(data map[string][]byte) [sha256.Size]byte {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write(data[k])
		h.Write([]byte{0})
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// tenantName is "<namespace>/<name>" of the tenant a Secret belongs to:
// its configuration's issuer, else its labels, else the Secret's name.
func tenantName(s *corev1.Secret, c *tenantConf) string {
	if c.cfg != nil {
		return c.cfg.Issuer
	}
	ns, name := s.Labels[v1alpha1.PoolTenantNamespaceLabel], s.Labels[v1alpha1.PoolTenantNameLabel]
	if ns != "" && name != "" {
		return ns + "/" + name
	}
	return s.Name
}

// registry maps Hosts to tenants. A Host claimed by two tenants is
// ambiguous and routes to neither of them (404 and a warning) until one
// lets go of it: serving it to either could hand one tenant's callers
// another tenant's data, and which was first is no better a guess.
type registry struct {
	log     *slog.Logger
	metrics *metrics

	mu     sync.RWMutex
	byKey  map[string]*tenant
	byHost map[string][]*tenant // the tenants claiming each host
}

func newRegistry(log *slog.Logger, m *metrics) *registry {
	return &registry{log: log, metrics: m, byKey: map[string]*tenant{}, byHost: map[string][]*tenant{}}
}

// Why a request names no tenant (rejection reasons).
const (
	reasonUnknownHost   = "unknown_host"
	reasonAmbiguousHost = "ambiguous_host"
)

// lookup is the one tenant host names, or why there is none.
func (r *registry) lookup(host string) (*tenant, string) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	switch ts := r.byHost[host]; len(ts) {
	case 0:
		return nil, reasonUnknownHost
	case 1:
		return ts[0], ""
	default:
		return nil, reasonAmbiguousHost
	}
}

// upsert installs a tenant's Secret, new or changed.
func (r *registry) upsert(p *Pool, s *corev1.Secret) {
	conf := confFromSecret(s, p.opts.ClusterDomain)
	r.mu.Lock()
	t := r.byKey[s.Name]
	if t == nil {
		// The name is fixed at creation (logs and metrics read it without
		// a lock); the operator names a tenant's Secret after it.
		t = newTenant(p, s.Name, tenantName(s, conf))
		r.byKey[s.Name] = t
		r.metrics.tenants.Inc()
	}
	if !slices.Equal(t.hosts, conf.hosts) {
		r.unclaimLocked(t)
		r.claimLocked(t, conf.hosts)
	}
	if invalid := conf.err != nil; invalid != t.invalid {
		t.invalid = invalid
		if invalid {
			r.metrics.invalid.Inc()
		} else {
			r.metrics.invalid.Dec()
		}
	}
	r.mu.Unlock()
	t.draining.Store(s.Annotations[v1alpha1.PoolTenantDrainingAnnotation] == "true")
	if !t.setConf(conf) {
		return
	}
	if conf.err != nil {
		r.log.Error("tenant configuration is invalid: its requests answer 503", "tenant", t.name, "secret", s.Name, "error", conf.err.Error())
	} else {
		t.scramKeys.Prepare(conf.cfg.MongoURI)
		r.log.Info("tenant configuration loaded", "tenant", t.name, "secret", s.Name, "hosts", len(conf.hosts))
	}
	if len(conf.hosts) == 0 {
		r.log.Warn("tenant names no host: no request can reach it", "tenant", t.name, "secret", s.Name)
	}
}

// remove forgets a tenant whose Secret was deleted.
func (r *registry) remove(key string) {
	r.mu.Lock()
	t := r.byKey[key]
	if t != nil {
		delete(r.byKey, key)
		r.unclaimLocked(t)
		r.metrics.tenants.Dec()
		if t.invalid {
			r.metrics.invalid.Dec()
		}
	}
	r.mu.Unlock()
	if t != nil {
		t.remove()
		r.log.Info("tenant left the pool", "tenant", t.name, "secret", key)
	}
}

func (r *registry) claimLocked(t *tenant, hosts []string) {
	t.hosts = hosts
	for _, h := range hosts {
		ts := append(r.byHost[h], t)
		r.byHost[h] = ts
		if len(ts) == 2 {
			r.metrics.ambiguousHosts.Inc()
		}
		if len(ts) >= 2 {
			names := make([]string, len(ts))
			for i, o := range ts {
				names[i] = o.name
			}
			r.log.Warn("host claimed by more than one tenant: it routes to none of them", "host", h, "tenants", names)
		}
	}
}

func (r *registry) unclaimLocked(t *tenant) {
	for _, h := range t.hosts {
		ts := slices.DeleteFunc(r.byHost[h], func(o *tenant) bool { return o == t })
		switch len(ts) {
		case 0:
			delete(r.byHost, h)
		case 1:
			r.metrics.ambiguousHosts.Dec()
			r.log.Info("host routes to one tenant again", "host", h, "tenant", ts[0].name)
			fallthrough
		default:
			r.byHost[h] = ts
		}
	}
	t.hosts = nil
}

// all is every tenant, for eviction and metrics.
func (r *registry) all() []*tenant {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*tenant, 0, len(r.byKey))
	for _, t := range r.byKey {
		out = append(out, t)
	}
	return out
}
