package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
	"userve.dev/userve/controllers/tenantdb"
	"userve.dev/userve/internal/mongouri"
)

// failure is a reconcile that could not converge, with the condition reason
// that names why.
type failure struct {
	Reason string
	Err    error
	// UserError failures wait for the user (a missing Secret, a spec to
	// fix); others are retried with backoff.
	UserError bool
}

func (f *failure) Error() string { return f.Err.Error() }
func (f *failure) Unwrap() error { return f.Err }

func userError(reason string, err error) *failure {
	return &failure{Reason: reason, Err: err, UserError: true}
}

// Condition reasons of failures.
const (
	ReasonInvalidDatabase = "InvalidDatabase"
	ReasonDatabaseInUse   = "DatabaseInUse"
	ReasonMongoURIMissing = "MongoURIMissing"
	// ReasonInvalidMongoURI: the tenant's URI is refused by the policy of
	// internal/mongouri and is never dialed.
	ReasonInvalidMongoURI   = "InvalidMongoURI"
	ReasonSecretNotFound    = "SecretNotFound"
	ReasonSecretUnreadable  = "SecretUnreadable"
	ReasonApplyFailed       = "ApplyFailed"
	ReasonCredentialsFailed = "CredentialsFailed"
)

// inputs is everything the objects are rendered from besides the spec.
type inputs struct {
	database string
	sources  render.SecretSources
	// adminURI is the URI the operator uses (the default one, or the
	// tenant's own): to claim and ping the database and manage its user.
	adminURI tenantdb.URI
	// podURI is the URI the tenant's pods get: their own database user's
	// (written into the credentials Secret), the copied default with
	// shared credentials, or the tenant's own.
	podURI []byte
	// isolation is the DatabaseIsolated condition; nil when not known.
	isolation *metav1.Condition
	// credentials is the credentials Secret as it exists, nil if none.
	credentials *corev1.Secret
	// secretValues are the values of the pods' secret environment variables
	// read from the tenant's own Secrets, by variable name.
	secretValues map[string][]byte
}

// reconcileNormal converges a live tenant: it reads what the objects are
// rendered from, applies them, pings the database and sets status.
func (r *UserServiceReconciler) reconcileNormal(ctx context.Context, us *v1alpha1.UserService) (ctrl.Result, error) {
	ctx, notes := withAppliedNotes(ctx)
	defer notes.flush(r, us)
	// The status as read, for a first report held back (firstReports):
	// placement writes status.pool on the way.
	var unreported *v1alpha1.UserServiceStatus
	if meta.FindStatusCondition(us.Status.Conditions, v1alpha1.ConditionPlaced) == nil {
		unreported = us.Status.DeepCopy()
	}
	obs := observed{}
	in, fail := r.loadInputs(ctx, us)
	if !in.adminURI.IsZero() {
		obs.databaseChecked = true
		obs.databaseErr = r.Databases.Ping(ctx, in.adminURI)
	}
	obs.database = in.database
	obs.isolation = in.isolation
	var m move
	if fail == nil {
		var out rendered
		if out, fail = r.render(us, in); fail == nil {
			m, fail = r.arrange(ctx, us, out)
		}
		if fail == nil {
			obs.deployment, fail = r.applyObjects(ctx, us, out, m.layout)
		}
		if fail == nil && m.leave != "" {
			fail = r.leavePool(ctx, us, m.leave)
		}
		if fail == nil {
			if err := r.removeStalePoolSecrets(ctx, us, us.Status.Pool); err != nil {
				fail = &failure{Reason: ReasonApplyFailed, Err: err}
			}
		}
		if fail == nil {
			obs.placed, obs.serving = &m.placed, m.serving
		}
	}
	obs.failure = fail
	// A copy: setStatus changes the condition in place.
	var placedBefore *metav1.Condition
	if c := meta.FindStatusCondition(us.Status.Conditions, v1alpha1.ConditionPlaced); c != nil {
		placedBefore = c.DeepCopy()
	}
	setStatus(us, obs)
	if p := obs.placed; p != nil && (placedBefore == nil || placedBefore.Reason != p.Reason) {
		switch p.Reason {
		case ReasonPoolNotFound, ReasonNamespaceNotAllowed, ReasonPoolFull, ReasonPoolNoNamespace:
			r.event(us, nil, corev1.EventTypeWarning, p.Reason, "Place", "%s; the tenant stays where it is", p.Message)
		case ReasonMovingIn:
			// A tenant born in a pool is not moving anywhere: Pooled says
			// when it is there.
			if placedBefore != nil {
				r.event(us, nil, corev1.EventTypeNormal, p.Reason, "Place", "%s", p.Message)
			}
		case ReasonMovingOut, ReasonPooled:
			r.event(us, nil, corev1.EventTypeNormal, p.Reason, "Place", "%s", p.Message)
		case ReasonDedicated:
			if placedBefore != nil {
				r.event(us, nil, corev1.EventTypeNormal, p.Reason, "Place", "%s", p.Message)
			}
		}
	}

	switch {
	case fail != nil:
		r.event(us, nil, corev1.EventTypeWarning, fail.Reason, "Reconcile", "%s", fail.Error())
		if fail.UserError {
			return ctrl.Result{RequeueAfter: r.RetryInterval}, nil
		}
		return ctrl.Result{}, fail
	case obs.databaseErr != nil:
		r.event(us, nil, corev1.EventTypeWarning, ReasonDatabaseUnreachable, "Ping", "%s", obs.databaseErr.Error())
		return ctrl.Result{RequeueAfter: r.RetryInterval}, nil
	case m.awaitingAck:
		if unreported != nil && r.firstReports.hold(us) {
			us.Status = *unreported
			return ctrl.Result{RequeueAfter: firstReportDelay}, nil
		}
		return ctrl.Result{RequeueAfter: ackPoll}, nil
	case m.moving:
		return ctrl.Result{RequeueAfter: movePoll}, nil
	case m.placed.Status == metav1.ConditionFalse:
		// Refused: a seat may free up, the namespace may get its label.
		return ctrl.Result{RequeueAfter: r.RetryInterval}, nil
	}
	return ctrl.Result{RequeueAfter: r.ResyncInterval}, nil
}

// loadInputs resolves the database and reads the Secrets the tenant's pods
// will read. It returns what it got so far with any failure, so that status
// can still report the database.
func (r *UserServiceReconciler) loadInputs(ctx context.Context, us *v1alpha1.UserService) (inputs, *failure) {
	var in inputs
	db, err := render.DatabaseName(us)
	if err != nil {
		return in, userError(ReasonInvalidDatabase, err)
	}
	owner, err := r.databaseClaimedBy(ctx, us, db)
	if err != nil {
		return in, &failure{Reason: ReasonApplyFailed, Err: err}
	}
	if owner != nil {
		// Sharing a database would let one tenant's tokens read another's
		// users, and a Delete policy drop them. Another namespace's tenant
		// is not named: its existence is none of this namespace's business.
		holder := "another namespace's UserService"
		if owner.Namespace == us.Namespace {
			holder = "UserService " + owner.Name
		}
		ctrl.LoggerFrom(ctx).Info("database in use", "database", db, "usedBy", owner.Namespace+"/"+owner.Name)
		return in, userError(ReasonDatabaseInUse, fmt.Errorf(
			"database %s is already used by %s: set another spec.mongo.database (at creation)", db, holder))
	}

	if in.sources, err = render.Sources(us, r.DefaultMongoURISecret); err != nil {
		return in, userError(ReasonMongoURIMissing, err)
	}
	if in.adminURI, err = r.mongoURI(ctx, us); err != nil {
		return in, asFailure(err)
	}

	in.secretValues = map[string][]byte{}
	// In the contract's fixed order, so that the same missing Secret gives
	// the same message (and no status write) every time. The MongoDB URI
	// was read above, judged by its policy.
	for _, ref := range v1alpha1.TenantSecretRefs(&us.Spec) {
		if ref.Env == v1alpha1.EnvMongoURI {
			continue
		}
		v, err := r.secretValue(ctx, us.Namespace, ref.Ref.Name, ref.Ref.Key)
		if err != nil {
			return in, asFailure(err)
		}
		in.secretValues[ref.Env] = v
	}

	if in.credentials, err = r.existingCredentials(ctx, us); err != nil {
		return in, &failure{Reason: ReasonCredentialsFailed, Err: err}
	}

	// The database must be the tenant's before anything gets credentials.
	// A tenant already on its database rides out a MongoDB outage with
	// the credentials it has, so that its objects are still converged; the
	// ping then reports the outage.
	claimFail := r.claimDatabase(ctx, us, in.adminURI, db)
	outage := claimFail != nil && claimFail.Reason == ReasonDatabaseUnreachable && us.Status.Database == db
	if claimFail != nil && !outage {
		return in, claimFail
	}
	var iso *metav1.Condition
	switch {
	case us.Spec.Mongo.URISecretRef != nil:
		c := tenantURIIsolation()
		in.podURI, iso = []byte(in.adminURI.Value()), &c
	case r.SharedDatabaseCredentials:
		c := sharedIsolation()
		in.podURI, iso = []byte(in.adminURI.Value()), &c
	case outage:
		if in.podURI = r.currentUserURI(us, in.adminURI, db, in.credentials); in.podURI == nil {
			return in, claimFail
		}
	default:
		uri, c, fail := r.databaseUser(ctx, us, in.adminURI, db, in.credentials)
		if fail != nil {
			// Same for a failing user check: keep the password it has.
			if fail.Reason != ReasonDatabaseUserFailed || us.Status.Database != db {
				return in, fail
			}
			if uri = r.currentUserURI(us, in.adminURI, db, in.credentials); uri == nil {
				return in, fail
			}
			ctrl.LoggerFrom(ctx).Info("database user not checked; keeping its current password", "error", fail.Error())
		} else {
			iso = &c
		}
		in.podURI = uri
	}
	in.database = db
	in.isolation = iso
	in.secretValues[v1alpha1.EnvMongoURI] = in.podURI
	return in, nil
}

// databaseClaimedBy is the other tenant that holds database db, if any: the
// one that uses it already (status.database), else the older one.
func (r *UserServiceReconciler) databaseClaimedBy(ctx context.Context, us *v1alpha1.UserService, db string) (*v1alpha1.UserService, error) {
	var list v1alpha1.UserServiceList
	if err := r.Client.List(ctx, &list, client.MatchingFields{indexDatabase: db}); err != nil {
		return nil, fmt.Errorf("list the tenants using database %s: %w", db, err)
	}
	for i := range list.Items {
		other := &list.Items[i]
		if other.UID != us.UID && claimsFirst(other, us, db) {
			return other, nil
		}
	}
	return nil, nil
}

func claimsFirst(a, b *v1alpha1.UserService, db string) bool {
	aUses, bUses := a.Status.Database == db, b.Status.Database == db
	if aUses != bUses {
		return aUses
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
}

// mongoURI reads the tenant's MongoDB URI: spec.mongo.uriSecretRef, judged
// by mongouri's policy before anything can dial it, else the operator's
// default.
func (r *UserServiceReconciler) mongoURI(ctx context.Context, us *v1alpha1.UserService) (tenantdb.URI, error) {
	if ref := us.Spec.Mongo.URISecretRef; ref != nil {
		v, err := r.secretValue(ctx, us.Namespace, ref.Name, ref.Key)
		if err != nil {
			return tenantdb.URI{}, err
		}
		if err := mongouri.Check(string(v)); err != nil {
			return tenantdb.URI{}, userError(ReasonInvalidMongoURI, fmt.Errorf("secret %s/%s key %s: %w", us.Namespace, ref.Name, ref.Key, err))
		}
		return tenantdb.TenantURI(string(v)), nil
	}
	if d := r.DefaultMongoURISecret; d != nil {
		v, err := r.secretValue(ctx, d.Namespace, d.Name, d.Key)
		return tenantdb.OperatorURI(string(v)), err
	}
	return tenantdb.URI{}, userError(ReasonMongoURIMissing, render.ErrNoMongoURI)
}

// secretValue reads one key of a Secret the operator does not own: from
// the cache once the Secret carries the watched label (the cache holds
// those, and a change to one triggers a reconcile), else from the API
// server. A thousand tenants on the default MongoDB URI read it from
// memory, not with a thousand GETs per resync.
func (r *UserServiceReconciler) secretValue(ctx context.Context, namespace, name, key string) ([]byte, error) {
	var s corev1.Secret
	nn := types.NamespacedName{Namespace: namespace, Name: name}
	err := r.Client.Get(ctx, nn, &s)
	if err != nil || s.Labels[render.LabelWatched] != "true" {
		err = r.APIReader.Get(ctx, nn, &s)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, userError(ReasonSecretNotFound, fmt.Errorf("secret %s/%s not found", namespace, name))
	case err != nil:
		return nil, fmt.Errorf("read secret %s/%s: %w", namespace, name, err)
	}
	v, ok := s.Data[key]
	if !ok || len(v) == 0 {
		return nil, userError(ReasonSecretNotFound, fmt.Errorf("secret %s/%s has no key %q", namespace, name, key))
	}
	if s.Labels[render.LabelWatched] != "true" {
		// Once labelled, the Secret is in the operator's cache and a new
		// value triggers a reconcile: the config hash changes and the pods
		// roll. One write, the first time only.
		patch := []byte(`{"metadata":{"labels":{"` + render.LabelWatched + `":"true"}}}`)
		if err := r.Client.Patch(ctx, &s, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldOwner)); err != nil {
			return nil, fmt.Errorf("label secret %s/%s: %w", namespace, name, err)
		}
	}
	return v, nil
}

// existingCredentials is the credentials Secret's data, nil when it does not
// exist. A miss in the cache is confirmed with the API server before new
// credentials are generated: a cache that lags behind must never cause
// tokens already handed out to be replaced.
func (r *UserServiceReconciler) existingCredentials(ctx context.Context, us *v1alpha1.UserService) (*corev1.Secret, error) {
	key := types.NamespacedName{Namespace: us.Namespace, Name: render.CredentialsSecretName(us)}
	var s corev1.Secret
	err := r.Client.Get(ctx, key, &s)
	if apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, key, &s)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &s, nil
}

func asFailure(err error) *failure {
	var f *failure
	if errors.As(err, &f) {
		return f
	}
	return &failure{Reason: ReasonSecretUnreadable, Err: err}
}

// rendered is what a tenant's objects are made of, for its own Deployment
// or its Secret in a pool.
type rendered struct {
	creds      *corev1.Secret
	config     []byte
	secrets    map[string][]byte // the pods' secret environment, by variable
	database   string
	deployment *appsv1.Deployment
}

func (r *UserServiceReconciler) render(us *v1alpha1.UserService, in inputs) (rendered, *failure) {
	var copied []byte
	if in.sources.CopyDefaultMongoURI {
		copied = in.podURI
	}
	var existing map[string][]byte
	if in.credentials != nil {
		existing = in.credentials.Data
	}
	creds, err := render.CredentialsSecret(us, existing, copied, r.Random)
	if err != nil {
		return rendered{}, &failure{Reason: ReasonCredentialsFailed, Err: err}
	}
	config, err := render.ServerConfig(us, in.database)
	if err != nil {
		return rendered{}, &failure{Reason: ReasonApplyFailed, Err: err}
	}
	secrets := map[string][]byte{v1alpha1.EnvJWTKey: creds.Data[render.KeyJWTKey]}
	if us.Spec.AdminTokensSecretRef == nil {
		secrets[v1alpha1.EnvAdminTokens] = creds.Data[render.KeyAdminTokens]
	}
	for env, v := range in.secretValues {
		secrets[env] = v
	}
	image := us.Spec.Image
	if image == "" {
		image = r.ServerImage
	}
	deployment := render.Deployment(us, render.DeploymentParams{
		Image:      image,
		Database:   in.database,
		Secrets:    in.sources,
		ConfigHash: render.ConfigHash(config, secrets),
	})
	return rendered{creds: creds, config: config, secrets: secrets, database: in.database, deployment: deployment}, nil
}

// layout says which of a tenant's objects serve it: its own Deployment (and
// autoscaler and disruption budget), and whether its Service has no selector
// and its endpoints are slice (the pool's pods). Both may hold during a move.
type layout struct {
	dedicated   bool
	poolService bool
	slice       *discoveryv1.EndpointSlice
}

// applyObjects applies the tenant's objects laid out as l, in an order that
// never leaves the Service without endpoints: a slice comes before the
// selector goes, the selector before the slice goes, and the Deployment goes
// last. It returns the Deployment as the API server has it (nil when the
// tenant has none).
func (r *UserServiceReconciler) applyObjects(ctx context.Context, us *v1alpha1.UserService, out rendered, l layout) (*appsv1.Deployment, *failure) {
	service := render.Service(us)
	if l.poolService {
		service = render.PooledService(us)
	}
	// Order matters on creation: what the pods mount and read comes first.
	// A tenant served by a pool has no pods of its own: the pool reads its
	// configuration from the tenant's Secret in the pool's namespace, so it
	// gets no ServiceAccount or ConfigMap until it needs a Deployment (two
	// writes of ~13 per pooled tenant, and two objects fewer in every cache).
	// One that had them before moving in keeps them.
	var required []client.Object
	if l.dedicated {
		required = append(required, render.ServiceAccount(us), render.ConfigMap(us, out.config))
	}
	required = append(required, out.creds)
	if l.slice != nil {
		required = append(required, l.slice)
	}
	required = append(required, service)
	deployment := out.deployment
	if l.dedicated {
		required = append(required, deployment)
	}
	a := r.newApplier()
	for _, obj := range required {
		if err := r.applyOne(ctx, a, us, obj); err != nil {
			return nil, err
		}
	}
	// What the spec asks for of the contract's optional kinds; an object of
	// a kind it does not ask for is removed.
	wanted := map[schema.GroupVersionKind]client.Object{}
	optionalObjects := []client.Object{nilIfNil(render.Ingress(us)), nilIfNil(render.NetworkPolicy(us))}
	if l.dedicated {
		optionalObjects = append(optionalObjects, nilIfNil(render.HorizontalPodAutoscaler(us)), nilIfNil(render.PodDisruptionBudget(us)))
	}
	if l.slice != nil {
		optionalObjects = append(optionalObjects, l.slice)
	}
	for _, obj := range optionalObjects {
		if obj == nil {
			continue
		}
		gvk, err := apiutil.GVKForObject(obj, r.Scheme)
		if err != nil {
			return nil, &failure{Reason: ReasonApplyFailed, Err: err}
		}
		wanted[gvk] = obj
	}
	var optional []schema.GroupVersionKind
	for _, kind := range v1alpha1.OwnedKinds() {
		if kind.Optional {
			optional = append(optional, kind.GroupVersionKind)
		}
	}
	for gvk := range wanted {
		if !slices.Contains(optional, gvk) {
			return nil, &failure{Reason: ReasonApplyFailed, Err: fmt.Errorf("rendered a %s, not an optional kind of the tenant contract (v1alpha1.OwnedKinds)", gvk.Kind)}
		}
	}
	if !l.dedicated {
		// Served by the pool: the Deployment goes, after the Service moved.
		optional = append(optional, schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"})
		deployment = nil
	}
	for _, gvk := range optional {
		if obj, ok := wanted[gvk]; ok {
			if obj != l.slice {
				if err := r.applyOne(ctx, a, us, obj); err != nil {
					return nil, err
				}
			}
			continue
		}
		empty, err := newObject(r.Scheme, gvk)
		if err != nil {
			return nil, &failure{Reason: ReasonApplyFailed, Err: err}
		}
		empty.SetNamespace(us.Namespace)
		empty.SetName(us.Name)
		removed, err := a.remove(ctx, empty, us)
		if err != nil {
			return nil, r.applyFailed(us, empty, "delete", err)
		}
		if removed {
			r.event(us, empty, corev1.EventTypeNormal, "Deleted", "Delete", "Deleted %s %s: %s", kindOf(r, empty), us.Name, removedWhy(gvk))
		}
	}
	return deployment, nil
}

func removedWhy(gvk schema.GroupVersionKind) string {
	switch gvk.Kind {
	case "Deployment":
		return "the tenant is served by its pool"
	case "EndpointSlice":
		return "the tenant's own pods serve it"
	}
	return "the spec no longer asks for it"
}

func (r *UserServiceReconciler) applyOne(ctx context.Context, a applier, us *v1alpha1.UserService, obj client.Object) *failure {
	outcome, err := a.apply(ctx, obj)
	if err != nil {
		return r.applyFailed(us, obj, "apply", err)
	}
	switch outcome {
	case created:
		r.own.wrote(obj)
		r.note(ctx, us, obj, "Created")
	case updated:
		r.own.wrote(obj)
		r.note(ctx, us, obj, "Updated")
	}
	return nil
}

func (r *UserServiceReconciler) applyFailed(us *v1alpha1.UserService, obj client.Object, verb string, err error) *failure {
	f := &failure{Reason: ReasonApplyFailed, Err: fmt.Errorf("%s %s %s: %w", verb, kindOf(r, obj), obj.GetName(), err)}
	// An API server refusing the object (bad image name, invalid host, a
	// quota) needs a spec change, not a retry storm.
	f.UserError = apierrors.IsInvalid(err) || apierrors.IsForbidden(err)
	return f
}

// event records an event about the tenant. related is the object acted on:
// events about different objects must not fold into one series.
func (r *UserServiceReconciler) event(us *v1alpha1.UserService, related client.Object, eventType, reason, action, note string, args ...any) {
	if r.Recorder == nil {
		return
	}
	if related == nil {
		r.Recorder.Eventf(us, nil, eventType, reason, action, note, args...)
		return
	}
	r.Recorder.Eventf(us, related, eventType, reason, action, note, args...)
}

// nilIfNil turns a typed nil from an optional builder into an untyped nil.
func nilIfNil[T any, PT interface {
	*T
	client.Object
}](obj PT) client.Object {
	if obj == nil {
		return nil
	}
	return obj
}

func kindOf(r *UserServiceReconciler, obj client.Object) string {
	gvks, _, err := r.Scheme.ObjectKinds(obj)
	if err != nil || len(gvks) == 0 {
		return fmt.Sprintf("%T", obj)
	}
	return gvks[0].Kind
}
