package integration_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers"
	"userve.dev/userve/test/mongofixture"
)

// tenantWithData creates a tenant on its own database at uri with policy,
// waits until the operator reaches the database, and stores a profile in it.
func tenantWithData(t *testing.T, uri string, policy v1alpha1.DeletionPolicy) (*v1alpha1.UserService, string) {
	t.Helper()
	ns := namespace(t)
	secret(t, ns, "mongo", map[string]string{"uri": uri})
	database := fmt.Sprintf("del_%s_%d", strings.ToLower(string(policy)), time.Now().UnixNano())
	us := &v1alpha1.UserService{ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: ns}}
	us.Spec.Mongo = v1alpha1.MongoSpec{URISecretRef: &v1alpha1.SecretKeyRef{Name: "mongo", Key: "uri"}, Database: database}
	us.Spec.DeletionPolicy = policy
	if err := k8s.Create(context.Background(), us); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, us, v1alpha1.ConditionDatabaseReady, metav1.ConditionTrue, "Connected")
	return us, database
}

func insertProfile(t *testing.T, db *mongo.Database) {
	t.Helper()
	if _, err := db.Collection("profiles").InsertOne(context.Background(), bson.D{{Key: "_id", Value: 1}, {Key: "nickname", Value: "ann"}}); err != nil {
		t.Fatal(err)
	}
}

func databaseExists(t *testing.T, c *mongo.Client, name string) bool {
	t.Helper()
	names, err := c.ListDatabaseNames(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(names, name)
}

func TestDeletePolicyDropsTheDatabase(t *testing.T) {
	us, database := tenantWithData(t, mongofixture.URI(t), v1alpha1.DeletionPolicyDelete)
	c := mongofixture.Client(t)
	insertProfile(t, c.Database(database))
	if !databaseExists(t, c, database) {
		t.Fatal("test setup: database not created")
	}

	deleteTenant(t, us)
	if databaseExists(t, c, database) {
		t.Errorf("database %s survived deletionPolicy Delete", database)
	}
	waitEvent(t, us, "DatabaseDropped", database)
}

func TestRetainPolicyKeepsTheDatabase(t *testing.T) {
	us, database := tenantWithData(t, mongofixture.URI(t), v1alpha1.DeletionPolicyRetain)
	db := mongofixture.Client(t).Database(database)
	t.Cleanup(func() { _ = db.Drop(context.Background()) })
	insertProfile(t, db)

	deleteTenant(t, us)
	n, err := db.Collection("profiles").CountDocuments(context.Background(), bson.D{})
	if err != nil || n != 1 {
		t.Errorf("after deletion with Retain the database holds %d profiles (err %v), want 1", n, err)
	}
	waitEvent(t, us, "DatabaseRetained", database)
}

func TestUnreachableDatabaseHoldsTheFinalizerWithoutHotLoop(t *testing.T) {
	srv := mongofixture.NewServer(t)
	us, database := tenantWithData(t, srv.URI, v1alpha1.DeletionPolicyDelete)
	insertProfile(t, clientOf(t, srv.URI).Database(database))
	srv.Stop()

	if err := k8s.Delete(context.Background(), us); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the drop failure is reported", func() error {
		got := tenant(t, us)
		if c := condition(got, v1alpha1.ConditionDegraded); c.Status != metav1.ConditionTrue || c.Reason != controllers.ReasonDatabaseDropFailed {
			return fmt.Errorf("Degraded = %s %s: %s", c.Status, c.Reason, c.Message)
		}
		if got.Status.Phase != v1alpha1.PhaseDeleting || !slices.Contains(got.Finalizers, controllers.Finalizer) {
			return fmt.Errorf("phase %s finalizers %v", got.Status.Phase, got.Finalizers)
		}
		return nil
	})
	waitEvent(t, us, controllers.ReasonDatabaseDropFailed, "")

	// Failed attempts back off: a handful in four seconds, not hundreds.
	before := reconcileErrors(t)
	time.Sleep(4 * time.Second)
	if n := reconcileErrors(t) - before; n > 6 {
		t.Errorf("%v failed reconciles in 4s while the database is down: a hot loop", n)
	}
	if got := tenant(t, us); !slices.Contains(got.Finalizers, controllers.Finalizer) {
		t.Fatal("the finalizer went although the database was not dropped")
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(40 * time.Second) // the backoff may be up to ~16s by now
	for !isGone(t, us) {
		if time.Now().After(deadline) {
			t.Fatal("the UserService stayed after the database came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if databaseExists(t, clientOf(t, srv.URI), database) {
		t.Errorf("database %s survived", database)
	}
}

func isGone(t *testing.T, us *v1alpha1.UserService) bool {
	err := get(t, &v1alpha1.UserService{}, us.Namespace, us.Name)
	return err != nil && strings.Contains(err.Error(), "not found")
}

func clientOf(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(optionsFor(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// reconcileErrors is controller-runtime's count of failed reconciles of the
// UserService controller.
func reconcileErrors(t *testing.T) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return sumMetric(families, "controller_runtime_reconcile_errors_total", map[string]string{"controller": controllers.ControllerName})
}

func sumMetric(families []*dto.MetricFamily, name string, labels map[string]string) float64 {
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

func optionsFor(uri string) *options.ClientOptions {
	return options.Client().ApplyURI(uri).SetTimeout(10 * time.Second)
}

// A tenant may not take another tenant's database: it would read the other's
// users with its own tokens, and drop them on deletion.
func TestAnotherTenantsDatabaseIsRefused(t *testing.T) {
	first := newTenant(t)
	got := waitCondition(t, first, v1alpha1.ConditionDatabaseReady, metav1.ConditionTrue, "")
	database := got.Status.Database
	db := mongofixture.Client(t).Database(database)
	t.Cleanup(func() { _ = db.Drop(context.Background()) })
	insertProfile(t, db)

	// In the same namespace (another namespace may not even name it:
	// TestDefaultDatabaseCannotBePreclaimed), so the holder may be named.
	intruder := newTenant(t, func(u *v1alpha1.UserService) {
		u.Namespace = first.Namespace
		u.Name = "intruder"
		u.Spec.Mongo.Database = database
		u.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete
	})
	refused := waitCondition(t, intruder, v1alpha1.ConditionDegraded, metav1.ConditionTrue, controllers.ReasonDatabaseInUse)
	if c := condition(refused, v1alpha1.ConditionDegraded); !strings.Contains(c.Message, "UserService acme") {
		t.Errorf("message does not name the holder: %s", c.Message)
	}
	if refused.Status.Database != "" {
		t.Errorf("status.database = %q for a refused database", refused.Status.Database)
	}
	if err := get(t, deploymentObj(), intruder.Namespace, "intruder"); err == nil {
		t.Error("a Deployment was created on another tenant's database")
	}

	deleteTenant(t, intruder)
	if n, err := db.Collection("profiles").CountDocuments(context.Background(), bson.D{}); err != nil || n != 1 {
		t.Fatalf("the first tenant's database holds %d profiles after the intruder's deletion (err %v)", n, err)
	}
	if c := condition(tenant(t, first), v1alpha1.ConditionDegraded); c.Status != metav1.ConditionFalse {
		t.Errorf("the first tenant is degraded: %+v", c)
	}
}
