package integration_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/yaml"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers"
	"userve.dev/userve/controllers/render"
	"userve.dev/userve/controllers/tenantdb"
)

func TestCreateRendersTheTenant(t *testing.T) {
	us := newTenant(t, func(u *v1alpha1.UserService) {
		u.Spec.Profile.CustomFields = []v1alpha1.CustomField{{Name: "level", Type: v1alpha1.FieldInteger}}
	})
	ns := us.Namespace

	// Every object, owned by the tenant and labelled for the cache.
	sa, cm, creds, svc, d := &corev1.ServiceAccount{}, &corev1.ConfigMap{}, &corev1.Secret{}, &corev1.Service{}, &appsv1.Deployment{}
	for _, o := range []struct {
		name string
		obj  client.Object
	}{{"acme", sa}, {"acme-config", cm}, {"acme-credentials", creds}, {"acme", svc}, {"acme", d}} {
		name, obj := o.name, o.obj
		eventually(t, fmt.Sprintf("%T %s exists", obj, name), func() error { return get(t, obj, ns, name) })
		refs := obj.GetOwnerReferences()
		if len(refs) != 1 || refs[0].Kind != "UserService" || refs[0].Name != "acme" || refs[0].Controller == nil || !*refs[0].Controller {
			t.Errorf("%T %s: owner references %+v", obj, name, refs)
		}
		if obj.GetLabels()[render.LabelManagedBy] != render.ManagedBy {
			t.Errorf("%T %s: labels %v", obj, name, obj.GetLabels())
		}
	}

	// The ConfigMap holds the manifest the server reads.
	var manifest v1alpha1.UserService
	if err := yaml.UnmarshalStrict([]byte(cm.Data[render.ConfigKey]), &manifest); err != nil {
		t.Fatalf("config is not a UserService manifest: %v", err)
	}
	if manifest.Name != "acme" || manifest.Namespace != ns || len(manifest.Spec.Profile.CustomFields) != 1 {
		t.Errorf("manifest = %+v", manifest)
	}

	// Credentials were generated; the MongoDB URI is the tenant's own
	// user's, never the default Secret's (see isolation_test.go).
	if len(creds.Data[render.KeyAdminTokens]) != 64 || len(creds.Data[render.KeyJWTKey]) != 64 {
		t.Errorf("credentials = %q", creds.Data)
	}
	if user, _, _ := tenantdb.Credentials(credentialsURI(t, us)); user != controllers.DatabaseUserName(us) {
		t.Errorf("mongo-uri is for user %q, want the tenant's own", user)
	}

	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != serverImage || *d.Spec.Replicas != 1 || podHash(d) == "" {
		t.Errorf("deployment: image %q replicas %d hash %q", c.Image, *d.Spec.Replicas, podHash(d))
	}

	// Status before any pod is ready: converged, not ready.
	got := waitCondition(t, us, v1alpha1.ConditionProgressing, metav1.ConditionTrue, "")
	if got.Status.ObservedGeneration != got.Generation || got.Status.Phase != v1alpha1.PhasePending {
		t.Errorf("status = %+v", got.Status)
	}
	if !slices.Contains(got.Finalizers, controllers.Finalizer) {
		t.Errorf("finalizers = %v", got.Finalizers)
	}
	if c := condition(got, v1alpha1.ConditionDatabaseReady); c.Status != metav1.ConditionTrue {
		t.Errorf("DatabaseReady = %+v", c)
	}
	if got.Status.Database != ns+"_acme" || got.Status.Endpoint != "http://acme."+ns+".svc:8080" || got.Status.CredentialsSecret != "acme-credentials" {
		t.Errorf("database %q endpoint %q credentials %q", got.Status.Database, got.Status.Endpoint, got.Status.CredentialsSecret)
	}

	// The pods come up: Ready.
	markAvailable(t, us)
	got = waitCondition(t, us, v1alpha1.ConditionReady, metav1.ConditionTrue, "Available")
	if got.Status.Phase != v1alpha1.PhaseReady || got.Status.Replicas != 1 || got.Status.ReadyReplicas != 1 {
		t.Errorf("status = %+v", got.Status)
	}
	if c := condition(got, v1alpha1.ConditionDegraded); c.Status != metav1.ConditionFalse {
		t.Errorf("Degraded = %+v", c)
	}
	for _, kind := range []string{"ServiceAccount", "ConfigMap", "Secret", "Service", "Deployment"} {
		waitEvent(t, us, "Created", "Created "+kind)
	}
}

// TestConvergedTenantCostsNoWrites runs the reconciler on a converged tenant
// through a client that counts writes: there must be none, and no event.
func TestConvergedTenantCostsNoWrites(t *testing.T) {
	ns := namespace(t)
	secret(t, ns, "smtp", map[string]string{"password": "pw"})
	secret(t, ns, "tokens", map[string]string{"list": "a,b"})
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}
	// Every optional part, with values the API server normalizes
	// ("0.5" CPU is stored as "500m"): none may cause a write each time.
	us.Spec.Ingress = &v1alpha1.IngressSpec{Host: "acme.example.com", TLSSecretName: "tls"}
	us.Spec.NetworkPolicy.Enabled = true
	us.Spec.PodDisruptionBudget = &v1alpha1.PodDisruptionBudgetSpec{}
	us.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MaxReplicas: 3}
	us.Spec.AdminTokensSecretRef = &v1alpha1.SecretKeyRef{Name: "tokens", Key: "list"}
	us.Spec.Verification.Mail = &v1alpha1.MailSpec{SMTP: &v1alpha1.SMTPSpec{
		Host: "smtp.example.com", From: "no-reply@example.com", Username: "u",
		PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "smtp", Key: "password"},
	}}
	us.Spec.Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0.5"), corev1.ResourceMemory: resource.MustParse("1000Mi")},
	}
	us.Spec.PodTemplate = v1alpha1.PodTemplateSpec{
		NodeSelector: map[string]string{"pool": "users"},
		Tolerations:  []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
			Weight: 10, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "kubernetes.io/hostname",
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{render.LabelInstance: "acme"}}},
		}}}},
	}
	withDefaultMongo(t)
	if err := k8s.Create(context.Background(), us); err != nil {
		t.Fatal(err)
	}
	markAvailable(t, us)
	before := waitCondition(t, us, v1alpha1.ConditionReady, metav1.ConditionTrue, "")

	counting := &writeCounter{Client: mgr.GetClient()}
	events := &eventCounter{EventRecorder: mgr.GetEventRecorder("userve-operator-test")}
	r := &controllers.UserServiceReconciler{
		Client: counting, APIReader: mgr.GetAPIReader(), Scheme: mgr.GetScheme(), Recorder: events,
		Databases: tenantdb.New(time.Second), ServerImage: serverImage, DefaultMongoURISecret: defaultMongo,
		Random: rand.Reader, ResyncInterval: time.Minute, RetryInterval: time.Second,
	}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(us)}
	// The cache may still be catching up with the operator's last writes.
	eventually(t, "a reconcile without writes", func() error {
		counting.writes.Store(0)
		if _, err := r.Reconcile(context.Background(), req); err != nil {
			return err
		}
		if n := counting.writes.Load(); n > 0 {
			return fmt.Errorf("%d writes", n)
		}
		return nil
	})
	counting.writes.Store(0)
	events.n.Store(0)
	for range 3 {
		res, err := r.Reconcile(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if res.RequeueAfter != time.Minute {
			t.Errorf("a converged tenant requeues after %v, want the resync interval", res.RequeueAfter)
		}
	}
	if n := counting.writes.Load(); n != 0 {
		t.Errorf("converged reconciles made %d writes: %v", n, counting.log)
	}
	if n := events.n.Load(); n != 0 {
		t.Errorf("converged reconciles emitted %d events", n)
	}
	if after := tenant(t, us); after.ResourceVersion != before.ResourceVersion {
		t.Errorf("the UserService changed: resourceVersion %s -> %s", before.ResourceVersion, after.ResourceVersion)
	}
}

// writeCounter counts every write a client makes.
type writeCounter struct {
	client.Client
	writes atomic.Int64
	log    []string
}

func (w *writeCounter) count(verb string, obj any) {
	w.writes.Add(1)
	w.log = append(w.log, fmt.Sprintf("%s %T", verb, obj))
}

func (w *writeCounter) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	w.count("create", obj)
	return w.Client.Create(ctx, obj, opts...)
}

func (w *writeCounter) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	w.count("update", obj)
	return w.Client.Update(ctx, obj, opts...)
}

func (w *writeCounter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	w.count("patch", obj)
	return w.Client.Patch(ctx, obj, patch, opts...)
}

func (w *writeCounter) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	w.count("delete", obj)
	return w.Client.Delete(ctx, obj, opts...)
}

func (w *writeCounter) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	w.count("apply", obj)
	return w.Client.Apply(ctx, obj, opts...)
}

func (w *writeCounter) Status() client.SubResourceWriter {
	return &statusCounter{SubResourceWriter: w.Client.Status(), w: w}
}

type statusCounter struct {
	client.SubResourceWriter
	w *writeCounter
}

func (s *statusCounter) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	s.w.count("status update", obj)
	return s.SubResourceWriter.Update(ctx, obj, opts...)
}

func (s *statusCounter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	s.w.count("status patch", obj)
	return s.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

type eventCounter struct {
	recorder.EventRecorder
	n atomic.Int64
}

func (e *eventCounter) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	e.n.Add(1)
	e.EventRecorder.Eventf(regarding, related, eventtype, reason, action, note, args...)
}

// Settings dropped from the spec are dropped from the objects: the operator
// applies its whole intent each time, and server-side apply removes what it
// no longer asks for.
func TestRemovedSettingsAreRemoved(t *testing.T) {
	ns := namespace(t)
	secret(t, ns, "hook", map[string]string{"hmac": "k"})
	withDefaultMongo(t)
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}
	us.Spec.Verification.SMS = &v1alpha1.SMSSpec{Webhook: &v1alpha1.WebhookSpec{URL: "https://sms.example.com", SecretRef: &v1alpha1.SecretKeyRef{Name: "hook", Key: "hmac"}}}
	us.Spec.PodTemplate.NodeSelector = map[string]string{"pool": "users"}
	us.Spec.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi"), corev1.ResourceCPU: resource.MustParse("1")}
	if err := k8s.Create(context.Background(), us); err != nil {
		t.Fatal(err)
	}
	hasWebhookEnv := func(d *appsv1.Deployment) bool {
		return slices.ContainsFunc(d.Spec.Template.Spec.Containers[0].Env, func(e corev1.EnvVar) bool { return e.Name == v1alpha1.EnvWebhookSecret })
	}
	eventually(t, "the webhook secret reaches the pods", func() error {
		if !hasWebhookEnv(deployment(t, us)) {
			return fmt.Errorf("no %s", v1alpha1.EnvWebhookSecret)
		}
		return nil
	})

	// The operator creates its objects with a plain create (cheaper for the
	// API server than an apply into nothing): its fields are owned by an
	// Update entry until the first apply that changes the object.
	for _, obj := range []client.Object{&corev1.ServiceAccount{}, &corev1.Service{}, &appsv1.Deployment{}} {
		if err := get(t, obj, ns, "acme"); err != nil {
			t.Fatal(err)
		}
		if ops := operatorEntries(obj); !slices.Equal(ops, []string{"Update"}) {
			t.Errorf("%T acme was not created with a plain create: the operator's managed fields entries %v", obj, ops)
		}
	}

	update(t, us, func(u *v1alpha1.UserService) {
		u.Spec.Verification.SMS = nil
		u.Spec.PodTemplate.NodeSelector = nil
		u.Spec.Resources = corev1.ResourceRequirements{}
	})
	eventually(t, "the settings are gone from the Deployment", func() error {
		d := deployment(t, us)
		pod := d.Spec.Template.Spec
		// Resources go back to the defaults.
		limits := pod.Containers[0].Resources.Limits
		if hasWebhookEnv(d) || len(pod.NodeSelector) != 0 || len(limits) != 1 || limits.Memory().String() != render.DefaultMemoryLimit {
			return fmt.Errorf("env %v nodeSelector %v limits %v", pod.Containers[0].Env, pod.NodeSelector, limits)
		}
		return nil
	})
	// What the create set is the apply's now: the next apply may drop it.
	var d appsv1.Deployment
	if err := get(t, &d, ns, "acme"); err != nil {
		t.Fatal(err)
	}
	if ops := operatorEntries(&d); !slices.Equal(ops, []string{"Apply"}) {
		t.Errorf("after an apply the operator's managed fields entries of Deployment acme are %v, want one Apply", ops)
	}
}

// operatorEntries lists the operations of the operator's managed fields
// entries on obj (the main resource, not status).
func operatorEntries(obj client.Object) []string {
	var ops []string
	for _, e := range obj.GetManagedFields() {
		if e.Manager == controllers.FieldOwner && e.Subresource == "" {
			ops = append(ops, string(e.Operation))
		}
	}
	return ops
}
