package integration_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers"
)

// A namespace cannot pre-claim the default database of a UserService
// another namespace has yet to create: the name is reserved for that
// namespace, and the victim, created afterwards, gets its database.
func TestDefaultDatabaseCannotBePreclaimed(t *testing.T) {
	victimNS := namespace(t)
	intruder := newTenant(t, func(u *v1alpha1.UserService) {
		u.Name = "squatter"
		u.Spec.Mongo.Database = victimNS + "_acme"
	})
	refused := waitCondition(t, intruder, v1alpha1.ConditionReady, metav1.ConditionFalse, controllers.ReasonInvalidDatabase)
	if c := condition(refused, v1alpha1.ConditionReady); !strings.Contains(c.Message, "reserved for namespace "+victimNS) {
		t.Errorf("message: %s", c.Message)
	}
	if refused.Status.Database != "" {
		t.Errorf("the intruder's status.database = %q", refused.Status.Database)
	}

	victim := newTenant(t, func(u *v1alpha1.UserService) { u.Namespace = victimNS })
	got := waitCondition(t, victim, v1alpha1.ConditionDatabaseReady, metav1.ConditionTrue, "")
	if got.Status.Database != victimNS+"_acme" {
		t.Fatalf("the victim's database is %q", got.Status.Database)
	}
	deleteTenant(t, intruder)
	deleteTenant(t, victim)
}

// A database another namespace's tenant uses is refused without naming
// that tenant or its namespace.
func TestDatabaseInUseDoesNotNameAForeignTenant(t *testing.T) {
	first := newTenant(t, func(u *v1alpha1.UserService) { u.Spec.Mongo.Database = fmt.Sprintf("shared-%d", time.Now().UnixNano()) })
	got := waitCondition(t, first, v1alpha1.ConditionDatabaseReady, metav1.ConditionTrue, "")

	other := newTenant(t, func(u *v1alpha1.UserService) {
		u.Name = "other"
		u.Spec.Mongo.Database = got.Status.Database
	})
	refused := waitCondition(t, other, v1alpha1.ConditionDegraded, metav1.ConditionTrue, controllers.ReasonDatabaseInUse)
	waitEvent(t, other, controllers.ReasonDatabaseInUse, "")
	texts := []string{}
	for _, c := range refused.Status.Conditions {
		texts = append(texts, c.Message)
	}
	texts = append(texts, eventReasons(t, other)[controllers.ReasonDatabaseInUse]...)
	for _, s := range texts {
		if strings.Contains(s, first.Namespace) || strings.Contains(s, "acme") {
			t.Errorf("a status or event names the other namespace's tenant: %s", s)
		}
	}
	if !strings.Contains(condition(refused, v1alpha1.ConditionDegraded).Message, "another namespace's UserService") {
		t.Errorf("message: %s", condition(refused, v1alpha1.ConditionDegraded).Message)
	}
	deleteTenant(t, other)
	deleteTenant(t, first)
}
