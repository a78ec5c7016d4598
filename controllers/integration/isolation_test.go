package integration_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers"
	"userve.dev/userve/controllers/render"
	"userve.dev/userve/controllers/tenantdb"
	"userve.dev/userve/test/mongofixture"
)

// onRealMongoDB: the tests run against USERVE_TEST_MONGO_URI, which has
// authorization, rather than FerretDB v1, which has none.
func onRealMongoDB() bool { return os.Getenv(mongofixture.EnvURI) != "" }

// credentialsURI is the MongoDB URI the operator wrote for the tenant's pods.
func credentialsURI(t *testing.T, us *v1alpha1.UserService) string {
	t.Helper()
	var s corev1.Secret
	eventually(t, "the credentials Secret holds a MongoDB URI", func() error {
		if err := get(t, &s, us.Namespace, render.CredentialsSecretName(us)); err != nil {
			return err
		}
		if len(s.Data[render.KeyMongoURI]) == 0 {
			return fmt.Errorf("no %s in %v", render.KeyMongoURI, s.Data)
		}
		return nil
	})
	return string(s.Data[render.KeyMongoURI])
}

// writeWith writes one document into database with uri's credentials.
func writeWith(t *testing.T, uri, database string) error {
	t.Helper()
	c, err := mongo.Connect(optionsFor(uri).SetTimeout(5 * time.Second))
	if err != nil {
		return err
	}
	defer c.Disconnect(context.Background())
	_, err = c.Database(database).Collection("probe").InsertOne(context.Background(), bson.D{{Key: "at", Value: time.Now()}})
	return err
}

// userExists asks the server, as its administrator.
func userExists(t *testing.T, database, user string) bool {
	t.Helper()
	var out struct {
		Users []bson.M `bson:"users"`
	}
	err := mongofixture.Client(t).Database(database).RunCommand(context.Background(),
		bson.D{{Key: "usersInfo", Value: bson.D{{Key: "user", Value: user}, {Key: "db", Value: database}}}}).Decode(&out)
	if err != nil {
		t.Fatalf("usersInfo: %v", err)
	}
	return len(out.Users) > 0
}

func withPassword(t *testing.T, uri, password string) string {
	t.Helper()
	user, old, ok := tenantdb.Credentials(uri)
	if !ok {
		t.Fatalf("no credentials in the tenant URI")
	}
	return strings.Replace(uri, user+":"+old+"@", user+":"+password+"@", 1)
}

// A tenant on the default MongoDB gets a user of its own; only that user's
// URI reaches its namespace, and it works; a wrong password does not.
func TestTenantGetsItsOwnDatabaseUser(t *testing.T) {
	us := newTenant(t)
	got := waitCondition(t, us, v1alpha1.ConditionDatabaseReady, metav1.ConditionTrue, controllers.ReasonConnected)
	database := got.Status.Database
	t.Cleanup(func() { _ = mongofixture.Client(t).Database(database).Drop(context.Background()) })

	uri := credentialsURI(t, us)
	user, password, _ := tenantdb.Credentials(uri)
	if user != controllers.DatabaseUserName(us) || len(password) != 64 {
		t.Errorf("credentials URI is for user %q with a %d-character password", user, len(password))
	}
	admin := mongofixture.URI(t)
	_, adminPassword, _ := tenantdb.Credentials(admin)
	if adminPassword != "" && strings.Contains(uri, adminPassword) {
		t.Fatal("the tenant's namespace holds the default URI's password")
	}
	if !strings.Contains(uri, "authSource="+database) {
		t.Errorf("the URI does not authenticate on the tenant database: %s", uri)
	}
	if err := writeWith(t, uri, database); err != nil {
		t.Fatalf("the tenant's own URI does not work: %v", err)
	}
	if err := writeWith(t, withPassword(t, uri, "wrong"), database); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	if !userExists(t, database, user) {
		t.Fatal("the server does not know the tenant's user")
	}

	// What the store enforces is said in status, as the server answered.
	iso := condition(got, v1alpha1.ConditionDatabaseIsolated)
	switch {
	case onRealMongoDB():
		if iso.Status != metav1.ConditionTrue || iso.Reason != controllers.ReasonUserConfined {
			t.Errorf("on MongoDB: DatabaseIsolated = %s %s: %s", iso.Status, iso.Reason, iso.Message)
		}
	default:
		if iso.Status != metav1.ConditionFalse || iso.Reason != controllers.ReasonStoreHasNoRoles || !strings.Contains(iso.Message, "NotImplemented") {
			t.Errorf("on FerretDB: DatabaseIsolated = %s %s: %s", iso.Status, iso.Reason, iso.Message)
		}
	}
	waitEvent(t, us, "DatabaseClaimed", database)

	// The pods read the URI from the credentials Secret, never the default.
	d := deployment(t, us)
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == v1alpha1.EnvMongoURI && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef.Name != render.CredentialsSecretName(us)) {
			t.Errorf("pods read %s from %+v", v1alpha1.EnvMongoURI, e.ValueFrom)
		}
	}
}

// The rotation annotation gives the user a new password, once per value;
// the old one stops working and the pods roll.
func TestRotationAnnotationChangesThePassword(t *testing.T) {
	us := newTenant(t)
	got := waitCondition(t, us, v1alpha1.ConditionDatabaseReady, metav1.ConditionTrue, "")
	database := got.Status.Database
	t.Cleanup(func() { _ = mongofixture.Client(t).Database(database).Drop(context.Background()) })
	before := credentialsURI(t, us)
	hashBefore := podHash(deployment(t, us))

	update(t, us, func(u *v1alpha1.UserService) {
		u.Annotations = map[string]string{render.AnnotationRotateCredentials: "first"}
	})
	var after string
	eventually(t, "a new password", func() error {
		var s corev1.Secret
		if err := get(t, &s, us.Namespace, render.CredentialsSecretName(us)); err != nil {
			return err
		}
		if s.Annotations[render.AnnotationCredentialsRotated] != "first" {
			return fmt.Errorf("rotation not recorded: %v", s.Annotations)
		}
		after = string(s.Data[render.KeyMongoURI])
		return nil
	})
	if after == before {
		t.Fatal("the URI did not change")
	}
	if err := writeWith(t, after, database); err != nil {
		t.Errorf("the new password does not work: %v", err)
	}
	if err := writeWith(t, before, database); err == nil {
		t.Error("the old password still works")
	}
	eventually(t, "the pods roll", func() error {
		if h := podHash(deployment(t, us)); h == hashBefore {
			return fmt.Errorf("config hash unchanged: %s", h)
		}
		return nil
	})
	waitEvent(t, us, "CredentialsRotated", controllers.DatabaseUserName(us))

	// The same value again is done: a reconcile of a later generation,
	// which reads the same annotation, rotates nothing.
	update(t, us, func(u *v1alpha1.UserService) { u.Spec.Replicas = ptr(int32(2)) })
	waitCondition(t, us, v1alpha1.ConditionDatabaseReady, metav1.ConditionTrue, "")
	if now := credentialsURI(t, us); now != after {
		t.Error("a handled rotation value rotated again")
	}
}

// The tenant's user is dropped with the tenant, whatever its policy.
func TestDatabaseUserIsDroppedOnDelete(t *testing.T) {
	for _, policy := range []v1alpha1.DeletionPolicy{v1alpha1.DeletionPolicyRetain, v1alpha1.DeletionPolicyDelete} {
		t.Run(string(policy), func(t *testing.T) {
			us := newTenant(t, func(u *v1alpha1.UserService) { u.Spec.DeletionPolicy = policy })
			got := waitCondition(t, us, v1alpha1.ConditionDatabaseReady, metav1.ConditionTrue, "")
			database := got.Status.Database
			db := mongofixture.Client(t).Database(database)
			t.Cleanup(func() { _ = db.Drop(context.Background()) })
			uri := credentialsURI(t, us)
			user := controllers.DatabaseUserName(us)
			if err := writeWith(t, uri, database); err != nil {
				t.Fatal(err)
			}

			deleteTenant(t, us)
			if userExists(t, database, user) {
				t.Errorf("user %s survived the deletion", user)
			}
			if err := writeWith(t, uri, database); err == nil {
				t.Error("the deleted tenant's credentials still work")
			}
			waitEvent(t, us, "DatabaseUserDropped", user)
			exists := databaseExists(t, mongofixture.Client(t), database)
			if exists != (policy == v1alpha1.DeletionPolicyRetain) {
				t.Errorf("deletionPolicy %s: database exists = %v", policy, exists)
			}
		})
	}
}

// retainedTenant makes a tenant named acme in ns on database, with data,
// and deletes it with deletionPolicy Retain.
func retainedTenant(t *testing.T, ns, database string) *v1alpha1.UserService {
	t.Helper()
	withDefaultMongo(t)
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}
	us.Spec.Mongo.Database = database
	if err := k8s.Create(context.Background(), us); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, us, v1alpha1.ConditionDatabaseReady, metav1.ConditionTrue, "")
	insertProfile(t, mongofixture.Client(t).Database(database))
	deleteTenant(t, us)
	return us
}

func uniqueDatabase(t *testing.T, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano())
	t.Cleanup(func() { _ = mongofixture.Client(t).Database(name).Drop(context.Background()) })
	return name
}

// Coming back after Retain (same namespace and name) is legitimate: the
// data is there again and the record takes the new UID.
func TestReadoptionAfterRetain(t *testing.T) {
	ns := namespace(t)
	database := uniqueDatabase(t, "readopt")
	first := retainedTenant(t, ns, database)

	again := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}
	again.Spec.Mongo.Database = database
	if err := k8s.Create(context.Background(), again); err != nil {
		t.Fatal(err)
	}
	got := waitCondition(t, again, v1alpha1.ConditionDatabaseReady, metav1.ConditionTrue, controllers.ReasonConnected)
	if got.UID == first.UID {
		t.Fatal("test setup: same UID")
	}
	waitEvent(t, again, "DatabaseAdopted", database)
	owner, err := tenantdb.New(0).DatabaseOwner(context.Background(), tenantdb.OperatorURI(mongofixture.URI(t)), database)
	if err != nil || owner == nil || owner.UID != string(got.UID) || owner.Namespace != ns {
		t.Fatalf("record after adoption = %+v (%v), want UID %s", owner, err, got.UID)
	}
	uri := credentialsURI(t, got)
	c, err := mongo.Connect(optionsFor(uri))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	if n, err := c.Database(database).Collection("profiles").CountDocuments(context.Background(), bson.D{}); err != nil || n != 1 {
		t.Errorf("the re-adopted database holds %d profiles (err %v), want 1", n, err)
	}
}

// refused waits for a tenant refused its database: no Deployment, no
// credentials, DatabaseReady=False DatabaseNotOwned and an event.
func refused(t *testing.T, us *v1alpha1.UserService, database string) *v1alpha1.UserService {
	t.Helper()
	got := waitCondition(t, us, v1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, controllers.ReasonDatabaseNotOwned)
	waitEvent(t, us, controllers.ReasonDatabaseNotOwned, database)
	if got.Status.Database != "" {
		t.Errorf("status.database = %q for a refused database", got.Status.Database)
	}
	if err := get(t, &appsv1.Deployment{}, us.Namespace, us.Name); !apierrors.IsNotFound(err) {
		t.Errorf("a Deployment exists for a refused database (err %v)", err)
	}
	if err := get(t, &corev1.Secret{}, us.Namespace, render.CredentialsSecretName(us)); !apierrors.IsNotFound(err) {
		t.Errorf("credentials exist for a refused database (err %v)", err)
	}
	if userExists(t, database, controllers.DatabaseUserName(us)) {
		t.Error("a database user was made for a refused database")
	}
	return got
}

// A database retained by a tenant of another namespace is not taken over,
// and deleting the refused tenant (even with Delete) leaves it alone.
func TestAnotherNamespacesRetainedDatabaseIsRefused(t *testing.T) {
	database := uniqueDatabase(t, "retained")
	owner := retainedTenant(t, namespace(t), database)

	thief := newTenant(t, func(u *v1alpha1.UserService) {
		u.Spec.Mongo.Database = database
		u.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete
	})
	got := refused(t, thief, database)
	if c := condition(got, v1alpha1.ConditionDatabaseReady); strings.Contains(c.Message, owner.Namespace) {
		t.Errorf("the refusal names the other namespace: %s", c.Message)
	}
	deleteTenant(t, thief)
	if n, err := mongofixture.Client(t).Database(database).Collection("profiles").CountDocuments(context.Background(), bson.D{}); err != nil || n != 1 {
		t.Fatalf("the retained database holds %d profiles after the thief's deletion (err %v)", n, err)
	}
}

// A database with data and no ownership record was never userve's.
func TestNonEmptyUnownedDatabaseIsRefused(t *testing.T) {
	database := uniqueDatabase(t, "foreign")
	insertProfile(t, mongofixture.Client(t).Database(database))
	us := newTenant(t, func(u *v1alpha1.UserService) {
		u.Spec.Mongo.Database = database
		u.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete
	})
	got := refused(t, us, database)
	if c := condition(got, v1alpha1.ConditionDatabaseReady); !strings.Contains(c.Message, "no ownership record") {
		t.Errorf("message: %s", c.Message)
	}
	deleteTenant(t, us)
	if !databaseExists(t, mongofixture.Client(t), database) {
		t.Fatal("a database the tenant never owned was dropped")
	}
}

// Delete drops only a database whose record is the tenant's own.
func TestDeleteKeepsADatabaseWhoseRecordIsAnothers(t *testing.T) {
	us := newTenant(t, func(u *v1alpha1.UserService) { u.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete })
	got := waitCondition(t, us, v1alpha1.ConditionDatabaseReady, metav1.ConditionTrue, "")
	db := mongofixture.Client(t).Database(got.Status.Database)
	t.Cleanup(func() { _ = db.Drop(context.Background()) })
	if _, err := db.Collection(tenantdb.OwnerCollection).UpdateOne(context.Background(), bson.D{{Key: "_id", Value: "owner"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "namespace", Value: "elsewhere"}}}}); err != nil {
		t.Fatal(err)
	}
	insertProfile(t, db)
	deleteTenant(t, us)
	if !databaseExists(t, mongofixture.Client(t), got.Status.Database) {
		t.Fatal("a database recorded as another tenant's was dropped")
	}
	waitEvent(t, us, "DatabaseNotDropped", "ownership record")
}

// With Delete, the database is dropped only once the tenant's pods are
// gone: the Deployment is scaled to zero and the pods awaited.
func TestDeleteWaitsForThePodsBeforeDropping(t *testing.T) {
	ctx := context.Background()
	us := newTenant(t, func(u *v1alpha1.UserService) { u.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete })
	got := waitCondition(t, us, v1alpha1.ConditionDatabaseReady, metav1.ConditionTrue, "")
	database := got.Status.Database
	t.Cleanup(func() { _ = mongofixture.Client(t).Database(database).Drop(ctx) })
	insertProfile(t, mongofixture.Client(t).Database(database))
	d := deployment(t, us)
	// A pod of the tenant, as the ReplicaSet would make it (no kubelet
	// runs here: it stays Pending until deleted).
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: us.Namespace, Name: "acme-pod", Labels: d.Spec.Selector.MatchLabels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "server", Image: serverImage}}},
	}
	if err := k8s.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}

	if err := k8s.Delete(ctx, us); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Deployment scaled to zero", func() error {
		d := deployment(t, us)
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 0 {
			return fmt.Errorf("replicas %v", d.Spec.Replicas)
		}
		return nil
	})
	// The reconcile that reported the wait had seen the pod: the database
	// and the tenant must still be there.
	waitCondition(t, us, v1alpha1.ConditionReady, metav1.ConditionFalse, controllers.ReasonWaitingForPodsToStop)
	if !databaseExists(t, mongofixture.Client(t), database) {
		t.Fatal("the database was dropped while a pod was left")
	}
	if isGone(t, us) {
		t.Fatal("the tenant went while a pod was left")
	}

	if err := k8s.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the tenant gone", func() error {
		if !isGone(t, us) {
			return fmt.Errorf("still there")
		}
		return nil
	})
	if databaseExists(t, mongofixture.Client(t), database) {
		t.Error("the database survived once the pods were gone")
	}
}

// A tenant whose URI Secret went (a namespace being deleted) is released
// after the grace period, with a Warning that nothing was dropped.
func TestVanishedURISecretReleasesAfterTheGrace(t *testing.T) {
	ctx := context.Background()
	us, database := tenantWithData(t, mongofixture.URI(t), v1alpha1.DeletionPolicyDelete)
	t.Cleanup(func() { _ = mongofixture.Client(t).Database(database).Drop(ctx) })
	insertProfile(t, mongofixture.Client(t).Database(database))
	if err := k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: us.Namespace, Name: "mongo"}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := k8s.Delete(ctx, us); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, us, controllers.ReasonDatabaseDropBlocked, "released without dropping")
	eventually(t, "released", func() error {
		if !isGone(t, us) {
			return fmt.Errorf("still there after %s", time.Since(start).Round(time.Second))
		}
		return nil
	})
	if waited := time.Since(start); waited < uriSecretGrace-time.Second {
		t.Errorf("released after %s, before the %s grace", waited, uriSecretGrace)
	}
	waitEvent(t, us, "DatabaseNotDropped", "the data was not dropped")
	if !databaseExists(t, mongofixture.Client(t), database) {
		t.Error("the database went although its URI was unknown")
	}
}

// With --shared-database-credentials the old behaviour holds: the default
// URI is copied, no user is made, and status says so.
func TestSharedCredentialsFlagCopiesTheDefaultURI(t *testing.T) {
	ctx := context.Background()
	withDefaultMongo(t)
	const ns = "shared-creds"
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	cfg, err := operatorIdentityConfig()
	if err != nil {
		t.Fatal(err)
	}
	m, pool, err := controllers.NewManager(cfg, controllers.Options{
		ServerImage: serverImage, DefaultMongoURISecret: defaultMongo, WatchNamespaces: []string{ns},
		SharedDatabaseCredentials: true, MetricsBindAddress: "0", HealthProbeBindAddress: "0",
		RetryInterval: time.Second, DatabaseTimeout: time.Second, SkipControllerNameValidation: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Start(mctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		pool.Close(context.Background())
	})

	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}
	if err := k8s.Create(ctx, us); err != nil {
		t.Fatal(err)
	}
	// Deleted while its manager still runs (cleanups run last first), so
	// that no tenant outside the watched namespaces is left behind.
	t.Cleanup(func() { deleteTenant(t, us) })
	got := waitCondition(t, us, v1alpha1.ConditionDatabaseIsolated, metav1.ConditionFalse, controllers.ReasonSharedCredentials)
	t.Cleanup(func() { _ = mongofixture.Client(t).Database(got.Status.Database).Drop(context.Background()) })
	if uri := credentialsURI(t, us); uri != mongofixture.URI(t) {
		t.Errorf("mongo-uri = %q, want the default Secret's value", uri)
	}
	if userExists(t, got.Status.Database, controllers.DatabaseUserName(us)) {
		t.Error("a database user was made with shared credentials")
	}
}

// A tenant already on its database keeps being converged through a MongoDB
// outage (its ownership cannot be checked, but it was checked before): a
// deleted Service comes back, and status reports the outage.
func TestOutageDoesNotStopConvergence(t *testing.T) {
	ctx := context.Background()
	srv := mongofixture.NewServer(t)
	us, _ := tenantWithData(t, srv.URI, v1alpha1.DeletionPolicyRetain)
	svc := &corev1.Service{}
	if err := get(t, svc, us.Namespace, us.Name); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if err := k8s.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Service re-created during the outage", func() error {
		var again corev1.Service
		if err := get(t, &again, us.Namespace, us.Name); err != nil {
			return err
		}
		if again.UID == svc.UID {
			return fmt.Errorf("still the deleted Service")
		}
		return nil
	})
	waitCondition(t, us, v1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, controllers.ReasonDatabaseUnreachable)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// An unreachable database is retried every RetryInterval (1 s here),
	// without backoff, and a ping asks the driver for an immediate check;
	// the bound leaves room for a loaded machine (the resync, 5 minutes,
	// is far beyond it). The status is read fresh by every reconcile: from
	// the cache, which had not seen the DatabaseUnreachable write yet, the
	// status looked unchanged and stayed False until the resync.
	deadline := time.Now().Add(60 * time.Second)
	for condition(tenant(t, us), v1alpha1.ConditionDatabaseReady).Status != metav1.ConditionTrue {
		if time.Now().After(deadline) {
			t.Fatalf("DatabaseReady after the outage: %+v; the fixture: %s", condition(tenant(t, us), v1alpha1.ConditionDatabaseReady), srv.Diagnose())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// staleUserService is a cache that has not yet seen the latest writes to
// one UserService: Get answers with an older copy of it.
type staleUserService struct {
	client.Client
	old *v1alpha1.UserService
}

func (c staleUserService) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if us, ok := obj.(*v1alpha1.UserService); ok && key == client.ObjectKeyFromObject(c.old) {
		c.old.DeepCopyInto(us)
		return nil
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

// The outage test's flake, made certain: a reconcile wrote
// DatabaseReady=False during an outage, the cache still has the tenant
// with True, and the database is reachable again. The next reconcile must
// put True back; judged against the cached status it found nothing to
// write (status writes trigger no reconcile, so False stayed until the
// resync). The reconciler reads tenants from the cache, but never a copy
// older than its own last write of them.
func TestStatusIsWrittenOverAStaleCache(t *testing.T) {
	ctx := context.Background()
	srv := mongofixture.NewServer(t)
	us, _ := tenantWithData(t, srv.URI, v1alpha1.DeletionPolicyRetain)
	cached := tenant(t, us)

	r := &controllers.UserServiceReconciler{
		Client: staleUserService{Client: mgr.GetClient(), old: cached}, APIReader: mgr.GetAPIReader(),
		Scheme: mgr.GetScheme(), Recorder: mgr.GetEventRecorder("userve-operator-test"),
		Databases: tenantdb.New(time.Second), ServerImage: serverImage, DefaultMongoURISecret: defaultMongo,
		Random: rand.Reader, ResyncInterval: time.Minute, RetryInterval: time.Second,
	}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(us)}
	// The reconcile during the outage writes False.
	srv.Stop()
	eventually(t, "DatabaseReady=False written by the reconciler", func() error {
		if _, err := r.Reconcile(ctx, req); err != nil {
			return err
		}
		if c := condition(tenant(t, us), v1alpha1.ConditionDatabaseReady); c.Status != metav1.ConditionFalse {
			return fmt.Errorf("DatabaseReady %s %s", c.Status, c.Reason)
		}
		return nil
	})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "DatabaseReady=True over the stale cache", func() error {
		if _, err := r.Reconcile(ctx, req); err != nil {
			return err
		}
		if c := condition(tenant(t, us), v1alpha1.ConditionDatabaseReady); c.Status != metav1.ConditionTrue {
			return fmt.Errorf("DatabaseReady %s %s: %s", c.Status, c.Reason, c.Message)
		}
		return nil
	})
}
