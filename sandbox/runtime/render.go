package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Lookup reads the objects a pod template refers to, in its namespace.
// A missing object is reported with an error satisfying apierrors.IsNotFound.
type Lookup interface {
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error)
}

// Pod names one local replica.
type Pod struct {
	Namespace string
	Name      string // <deployment>-<index>
	Dir       string // the replica's own directory
	Host      string // loopback address it listens on
	Port      int
	// MetricsPort is the replica's own /metrics port (userve serve
	// --metrics-listen); 0 turns the metrics listener off. Every replica
	// needs its own: the pod template's :9090 would collide on one machine.
	MetricsPort int
	// Kubeconfig, when set, is the process's KUBECONFIG: a pool's pods
	// reach the API server with their service account, a local process
	// with the sandbox's kubeconfig.
	Kubeconfig string
}

// Launch is a pod template's container turned into a local process.
type Launch struct {
	Container string
	Argv      []string
	Env       []string // KEY=VALUE, the complete environment
	WorkDir   string
	// Files are volume contents to write before start, by path relative to
	// the pod directory; Dirs are directories to create (emptyDir).
	Files map[string]File
	Dirs  []string
	// Readiness says how to tell the process is ready.
	Readiness Probe
	// Grace is how long a stopping process gets between SIGTERM and SIGKILL.
	Grace time.Duration
	// ServesMetrics: the process is `userve serve` or `userve pool`, whose --metrics-listen
	// is pointed at the replica's metrics port.
	ServesMetrics bool
}

// File is one materialized volume file.
type File struct {
	Data []byte
	Mode os.FileMode
}

// Probe is an HTTP GET of Path on the replica's port; TCP when Path is
// empty and TCP is set; none (ready once started) otherwise.
type Probe struct {
	Path   string
	TCP    bool
	Period time.Duration
}

// localGraceCap bounds termination grace: a laptop sandbox should stop fast.
const localGraceCap = 10 * time.Second

// TemplateHash names a pod template's content, like Kubernetes'
// pod-template-hash: replicas of an older hash are rolled.
func TemplateHash(t *corev1.PodTemplateSpec) string {
	data, err := json.Marshal(t)
	if err != nil {
		panic(err) // a typed API object always marshals
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:10]
}

// mount is a container path and where it lives on this machine.
type mount struct{ container, local string }

// Render turns the Deployment's first container into a Launch for pod: the
// image is replaced by exe (the local userve binary), env is resolved from
// values, Secrets and ConfigMaps, ConfigMap and Secret volumes become files
// under pod.Dir/volumes/<volume>, every mount path in args, env and the
// working directory points there, and the server listens on pod.Host:Port.
func Render(ctx context.Context, lk Lookup, d *appsv1.Deployment, pod Pod, exe string) (*Launch, error) {
	spec := &d.Spec.Template.Spec
	if len(spec.Containers) == 0 {
		return nil, fmt.Errorf("pod template has no container")
	}
	c := &spec.Containers[0]
	l := &Launch{Container: c.Name, Files: map[string]File{}, Grace: localGraceCap}
	if g := spec.TerminationGracePeriodSeconds; g != nil && time.Duration(*g)*time.Second < localGraceCap {
		l.Grace = time.Duration(*g) * time.Second
	}

	volumeDirs := map[string]string{} // volume name -> directory relative to pod.Dir
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		rel := filepath.Join("volumes", v.Name)
		volumeDirs[v.Name] = rel
		if err := materialize(ctx, lk, pod.Namespace, v, rel, l); err != nil {
			return nil, fmt.Errorf("volume %s: %w", v.Name, err)
		}
	}

	var mounts []mount
	for _, m := range c.VolumeMounts {
		rel, ok := volumeDirs[m.Name]
		if !ok {
			return nil, fmt.Errorf("volume mount %s: no volume named %q", m.MountPath, m.Name)
		}
		local := filepath.Join(pod.Dir, rel, filepath.FromSlash(m.SubPath))
		mounts = append(mounts, mount{container: path.Clean(m.MountPath), local: local})
	}
	// Longest first, so /etc/userve/x wins over /etc/userve.
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].container) > len(mounts[j].container) })

	env, err := resolveEnv(ctx, lk, d, c, pod)
	if err != nil {
		return nil, err
	}
	vars := map[string]string{}
	names := make([]string, 0, len(env))
	for _, e := range env {
		if _, seen := vars[e.name]; !seen {
			names = append(names, e.name)
		}
		vars[e.name] = rewritePaths(e.value, mounts)
	}
	lookupVar := func(name string) (string, bool) { v, ok := vars[name]; return v, ok }

	l.Argv = []string{exe}
	if len(c.Command) > 0 {
		// The image's binary is replaced, its arguments kept.
		for _, a := range c.Command[1:] {
			l.Argv = append(l.Argv, rewritePaths(expandVars(a, lookupVar), mounts))
		}
	}
	for _, a := range c.Args {
		l.Argv = append(l.Argv, rewritePaths(expandVars(a, lookupVar), mounts))
	}
	l.Argv = overrideListen(l.Argv, net.JoinHostPort(pod.Host, strconv.Itoa(pod.Port)))
	if len(l.Argv) > 1 && (l.Argv[1] == "serve" || l.Argv[1] == "pool") {
		l.ServesMetrics = true
		l.Argv = overrideMetricsListen(l.Argv, pod.Host, pod.MetricsPort)
	}

	base := map[string]string{
		"PATH":       os.Getenv("PATH"),
		"HOME":       pod.Dir,
		"TMPDIR":     filepath.Join(pod.Dir, "tmp"),
		"HOSTNAME":   pod.Name,
		"KUBECONFIG": pod.Kubeconfig,
	}
	l.Dirs = append(l.Dirs, "tmp")
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "HOSTNAME", "KUBECONFIG"} {
		if _, set := vars[k]; !set && base[k] != "" {
			l.Env = append(l.Env, k+"="+base[k])
		}
	}
	for _, n := range names {
		l.Env = append(l.Env, n+"="+vars[n])
	}

	l.WorkDir = pod.Dir
	if c.WorkingDir != "" {
		l.WorkDir = rewritePaths(c.WorkingDir, mounts)
	}
	l.Readiness = readiness(c.ReadinessProbe)
	return l, nil
}

func readiness(p *corev1.Probe) Probe {
	if p == nil {
		return Probe{}
	}
	period := time.Second
	if p.PeriodSeconds > 0 && time.Duration(p.PeriodSeconds)*time.Second < period {
		period = time.Duration(p.PeriodSeconds) * time.Second
	}
	switch {
	case p.HTTPGet != nil:
		path := p.HTTPGet.Path
		if path == "" {
			path = "/"
		}
		return Probe{Path: path, Period: period}
	case p.TCPSocket != nil:
		return Probe{TCP: true, Period: period}
	}
	// exec and gRPC probes cannot be run outside a container: the process
	// counts as ready once it runs, as without a probe.
	return Probe{}
}

// overrideListen points the server at addr: the value of --listen (either
// form) is replaced, or the flag appended when absent.
func overrideListen(argv []string, addr string) []string {
	return overrideFlag(argv, "listen", addr)
}

// overrideMetricsListen points --metrics-listen at host:port, or turns the
// metrics listener off (an empty address) when port is 0.
func overrideMetricsListen(argv []string, host string, port int) []string {
	addr := ""
	if port > 0 {
		addr = net.JoinHostPort(host, strconv.Itoa(port))
	}
	return overrideFlag(argv, "metrics-listen", addr)
}

// overrideFlag sets flag name to value: its value (either form) is
// replaced, or the flag appended when absent (before a "--").
func overrideFlag(argv []string, name, value string) []string {
	out := append([]string(nil), argv...)
	for i := 1; i < len(out); i++ {
		switch a := out[i]; {
		case a == "--"+name || a == "-"+name:
			if i+1 < len(out) {
				out[i+1] = value
				return out
			}
		case strings.HasPrefix(a, "--"+name+"=") || strings.HasPrefix(a, "-"+name+"="):
			out[i] = a[:strings.IndexByte(a, '=')+1] + value
			return out
		case a == "--":
			// Everything after -- is positional: insert before it.
			return append(out[:i:i], append([]string{"--" + name, value}, out[i:]...)...)
		}
	}
	return append(out, "--"+name, value)
}

// rewritePaths replaces every container mount path in s that starts a path
// (at the start of s or after one of = : , space) and ends one (at the end
// of s, '/', or one of those separators) with its local directory.
func rewritePaths(s string, mounts []mount) string {
	if len(mounts) == 0 || s == "" {
		return s
	}
	var b strings.Builder
	i := 0
	for i < len(s) {
		matched := false
		if i == 0 || strings.IndexByte("=:, ", s[i-1]) >= 0 {
			for _, m := range mounts {
				if !strings.HasPrefix(s[i:], m.container) {
					continue
				}
				j := i + len(m.container)
				if j == len(s) || strings.IndexByte("/=:, ", s[j]) >= 0 || m.container == "/" {
					b.WriteString(m.local)
					if m.container == "/" && j < len(s) && s[j] != '/' {
						b.WriteByte('/')
					}
					i = j
					matched = true
					break
				}
			}
		}
		if !matched {
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String()
}

// expandVars does Kubernetes' $(VAR) expansion: a defined variable is
// replaced, an undefined reference stays as written, $$ escapes a $.
func expandVars(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

type envVar struct{ name, value string }

// resolveEnv is the container's environment in Kubernetes' order: envFrom
// sources first, then env entries (later ones win; $(VAR) sees earlier ones).
func resolveEnv(ctx context.Context, lk Lookup, d *appsv1.Deployment, c *corev1.Container, pod Pod) ([]envVar, error) {
	ns := pod.Namespace
	var out []envVar
	seen := map[string]string{}
	set := func(name, value string) {
		out = append(out, envVar{name, value})
		seen[name] = value
	}
	for _, src := range c.EnvFrom {
		switch {
		case src.ConfigMapRef != nil:
			cm, err := lk.ConfigMap(ctx, ns, src.ConfigMapRef.Name)
			if err != nil {
				if optional(src.ConfigMapRef.Optional) && isNotFound(err) {
					continue
				}
				return nil, fmt.Errorf("envFrom configmap %s: %w", src.ConfigMapRef.Name, err)
			}
			for _, k := range sortedKeys(cm.Data) {
				set(src.Prefix+k, cm.Data[k])
			}
		case src.SecretRef != nil:
			s, err := lk.Secret(ctx, ns, src.SecretRef.Name)
			if err != nil {
				if optional(src.SecretRef.Optional) && isNotFound(err) {
					continue
				}
				return nil, fmt.Errorf("envFrom secret %s: %w", src.SecretRef.Name, err)
			}
			for _, k := range sortedKeys(s.Data) {
				set(src.Prefix+k, string(s.Data[k]))
			}
		}
	}
	lookupSeen := func(name string) (string, bool) { v, ok := seen[name]; return v, ok }
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expandVars(e.Value, lookupSeen))
			continue
		}
		v, ok, err := valueFrom(ctx, lk, d, c, pod, e.ValueFrom)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}
	return out, nil
}

func valueFrom(ctx context.Context, lk Lookup, d *appsv1.Deployment, c *corev1.Container, pod Pod, src *corev1.EnvVarSource) (string, bool, error) {
	ns := pod.Namespace
	switch {
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		s, err := lk.Secret(ctx, ns, ref.Name)
		if err != nil {
			if optional(ref.Optional) && isNotFound(err) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("secret %s: %w", ref.Name, err)
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			if optional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("secret %s has no key %q", ref.Name, ref.Key)
		}
		return string(v), true, nil
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		cm, err := lk.ConfigMap(ctx, ns, ref.Name)
		if err != nil {
			if optional(ref.Optional) && isNotFound(err) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("configmap %s: %w", ref.Name, err)
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if b, isBinary := cm.BinaryData[ref.Key]; isBinary {
				return string(b), true, nil
			}
			if optional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("configmap %s has no key %q", ref.Name, ref.Key)
		}
		return v, true, nil
	case src.FieldRef != nil:
		v, err := fieldValue(d, pod, src.FieldRef.FieldPath)
		return v, err == nil, err
	case src.ResourceFieldRef != nil:
		v, err := resourceValue(c, src.ResourceFieldRef)
		return v, err == nil, err
	}
	return "", false, fmt.Errorf("unsupported valueFrom")
}

// fieldValue answers the downward API for a local replica.
func fieldValue(d *appsv1.Deployment, pod Pod, fieldPath string) (string, error) {
	t := &d.Spec.Template
	switch fieldPath {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return "local-" + pod.Namespace + "-" + pod.Name, nil
	case "spec.nodeName", "status.hostIP":
		if fieldPath == "status.hostIP" {
			return pod.Host, nil
		}
		return "localhost", nil
	case "spec.serviceAccountName":
		if t.Spec.ServiceAccountName == "" {
			return "default", nil
		}
		return t.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return pod.Host, nil
	}
	for prefix, m := range map[string]map[string]string{
		"metadata.labels":      t.Labels,
		"metadata.annotations": t.Annotations,
	} {
		if strings.HasPrefix(fieldPath, prefix+"['") && strings.HasSuffix(fieldPath, "']") {
			return m[fieldPath[len(prefix)+2:len(fieldPath)-2]], nil
		}
	}
	return "", fmt.Errorf("fieldRef %q is not supported by the local runtime", fieldPath)
}

// resourceValue gives a container's limit (else request) in divisor units,
// rounded up like the kubelet does; unset resources give 0.
func resourceValue(c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("resourceFieldRef %q is not supported", ref.Resource)
	}
	list := c.Resources.Requests
	if kind == "limits" {
		list = c.Resources.Limits
	}
	q, set := list[corev1.ResourceName(name)]
	if !set {
		return "0", nil
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if name == "cpu" {
		m, dm := q.MilliValue(), divisor.MilliValue()
		return strconv.FormatInt((m+dm-1)/dm, 10), nil
	}
	v, dv := q.Value(), divisor.Value()
	return strconv.FormatInt((v+dv-1)/dv, 10), nil
}

// materialize adds a volume's files (configMap, secret, projected) or
// directory (everything else) to l.
func materialize(ctx context.Context, lk Lookup, ns string, v *corev1.Volume, rel string, l *Launch) error {
	l.Dirs = append(l.Dirs, rel)
	switch {
	case v.ConfigMap != nil:
		return addConfigMap(ctx, lk, ns, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, rel, l)
	case v.Secret != nil:
		return addSecret(ctx, lk, ns, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, rel, l)
	case v.Projected != nil:
		for _, src := range v.Projected.Sources {
			switch {
			case src.ConfigMap != nil:
				if err := addConfigMap(ctx, lk, ns, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, rel, l); err != nil {
					return err
				}
			case src.Secret != nil:
				if err := addSecret(ctx, lk, ns, src.Secret.Name, src.Secret.Items, src.Secret.Optional, rel, l); err != nil {
					return err
				}
			}
			// Service account tokens, downward API and cluster trust bundles
			// have no local meaning; the directory is there, empty.
		}
	}
	return nil
}

func addConfigMap(ctx context.Context, lk Lookup, ns, name string, items []corev1.KeyToPath, opt *bool, rel string, l *Launch) error {
	cm, err := lk.ConfigMap(ctx, ns, name)
	if err != nil {
		if optional(opt) && isNotFound(err) {
			return nil
		}
		return fmt.Errorf("configmap %s: %w", name, err)
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return addKeys("configmap "+name, data, items, opt, rel, 0o644, l)
}

func addSecret(ctx context.Context, lk Lookup, ns, name string, items []corev1.KeyToPath, opt *bool, rel string, l *Launch) error {
	s, err := lk.Secret(ctx, ns, name)
	if err != nil {
		if optional(opt) && isNotFound(err) {
			return nil
		}
		return fmt.Errorf("secret %s: %w", name, err)
	}
	return addKeys("secret "+name, s.Data, items, opt, rel, 0o600, l)
}

func addKeys(what string, data map[string][]byte, items []corev1.KeyToPath, opt *bool, rel string, mode os.FileMode, l *Launch) error {
	if len(items) == 0 {
		for k, v := range data {
			l.Files[filepath.Join(rel, k)] = File{Data: v, Mode: mode}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional(opt) {
				continue
			}
			return fmt.Errorf("%s has no key %q", what, it.Key)
		}
		p := path.Clean(it.Path)
		if path.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") {
			return fmt.Errorf("%s: item path %q leaves the volume", what, it.Path)
		}
		l.Files[filepath.Join(rel, filepath.FromSlash(p))] = File{Data: v, Mode: mode}
	}
	return nil
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }

func optional(b *bool) bool { return b != nil && *b }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
