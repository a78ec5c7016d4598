package controllers

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
	"userve.dev/userve/controllers/tenantdb"
)

// Condition reasons of database ownership and isolation.
const (
	ReasonDatabaseNotOwned = "DatabaseNotOwned"
	// DatabaseIsolated reasons.
	ReasonUserConfined          = "UserConfined"
	ReasonStoreHasNoRoles       = "StoreHasNoAuthorization"
	ReasonSharedCredentials     = "SharedCredentials"
	ReasonTenantURI             = "TenantURI"
	ReasonIsolationNotChecked   = "NotChecked"
	ReasonDatabaseUserFailed    = "DatabaseUserFailed"
	eventDatabaseClaimed        = "DatabaseClaimed"
	eventDatabaseAdopted        = "DatabaseAdopted"
	eventCredentialsRotated     = "CredentialsRotated"
	eventDatabaseNotDropped     = "DatabaseNotDropped"
	eventDatabaseUserDropped    = "DatabaseUserDropped"
	eventDatabaseUserDropFailed = "DatabaseUserDropFailed"
)

// DatabaseUserName is the tenant's MongoDB user, defined on its database.
// Namespaces and names are DNS labels, without dots, so the name is
// unambiguous.
func DatabaseUserName(us *v1alpha1.UserService) string {
	return "userve." + us.Namespace + "." + us.Name
}

// managesDatabaseUser: the tenant is on the operator's default MongoDB and
// credentials are not shared, so it gets a user of its own.
func (r *UserServiceReconciler) managesDatabaseUser(us *v1alpha1.UserService) bool {
	return us.Spec.Mongo.URISecretRef == nil && !r.SharedDatabaseCredentials
}

// claimDatabase writes or checks the database's ownership record with the
// operator's URI. A refusal is a user error: the tenant gets neither objects
// nor credentials until its spec names a database it may use.
func (r *UserServiceReconciler) claimDatabase(ctx context.Context, us *v1alpha1.UserService, uri tenantdb.URI, database string) *failure {
	me := tenantdb.Owner{Namespace: us.Namespace, Name: us.Name, UID: string(us.UID)}
	// A tenant that used the database before ownership records existed
	// (status.database, which only the operator writes) keeps it.
	adopt := us.Status.Database == database
	if r.checks.claimFresh(us.UID, database, r.dbCheckTTL()) {
		return nil
	}
	claim, err := r.Databases.ClaimDatabase(ctx, uri, database, me, adopt)
	if err != nil {
		r.checks.forget(us.UID)
		return &failure{Reason: ReasonDatabaseUnreachable, Err: err}
	}
	if claim.Outcome != tenantdb.NotOwned {
		r.checks.claimedNow(us.UID, database)
	}
	switch claim.Outcome {
	case tenantdb.NotOwned:
		// The holder's name stays in the operator's log: another
		// namespace's tenants are none of this one's business.
		holder := "none (the database holds data but no ownership record)"
		why := "it holds data but no ownership record"
		if claim.Holder != nil {
			holder = claim.Holder.String()
			why = "its ownership record names another UserService"
		}
		ctrl.LoggerFrom(ctx).Info("database refused", "database", database, "recordedOwner", holder)
		return userError(ReasonDatabaseNotOwned, fmt.Errorf(
			"database %s is not this UserService's: %s; a UserService uses only a new or empty database, or its own (same namespace and name, after deletionPolicy Retain); set another spec.mongo.database", database, why))
	case tenantdb.Claimed:
		r.event(us, nil, corev1.EventTypeNormal, eventDatabaseClaimed, "Claim", "Database %s now belongs to this UserService (ownership record written)", database)
	case tenantdb.Adopted:
		r.event(us, nil, corev1.EventTypeNormal, eventDatabaseAdopted, "Claim", "Database %s, retained by an earlier UserService of the same namespace and name, is used again", database)
	}
	return nil
}

// databaseUser makes the tenant's own user exist and returns the URI its
// pods get, with what the store enforces. The password is kept in the
// credentials Secret (inside the URI) and replaced only on a rotation
// request or when the Secret lost it.
func (r *UserServiceReconciler) databaseUser(ctx context.Context, us *v1alpha1.UserService, adminURI tenantdb.URI, database string, existing *corev1.Secret) ([]byte, metav1.Condition, *failure) {
	name := DatabaseUserName(us)
	var data map[string][]byte
	var annotations map[string]string
	if existing != nil {
		data, annotations = existing.Data, existing.Annotations
	}
	password := passwordOf(data[render.KeyMongoURI], name)
	rotate := render.RotationPending(us, annotations)
	setPassword := password == "" || rotate
	if setPassword {
		p, err := newPassword(r.Random)
		if err != nil {
			return nil, metav1.Condition{}, &failure{Reason: ReasonCredentialsFailed, Err: err}
		}
		password = p
	}
	u := tenantdb.User{Database: database, Name: name, Password: password}
	uri, err := tenantdb.UserURI(adminURI.Value(), u)
	if err != nil {
		return nil, metav1.Condition{}, userError(ReasonDatabaseUserFailed, fmt.Errorf("the operator's default MongoDB URI: %v", err))
	}
	if !setPassword {
		if iso, ok := r.checks.userFresh(us.UID, database, name, password, r.dbCheckTTL()); ok {
			return []byte(uri), isolationCondition(iso, name, database), nil
		}
	}
	iso, err := r.Databases.EnsureUser(ctx, adminURI.Value(), u, setPassword)
	if err != nil {
		r.checks.forget(us.UID)
		return nil, metav1.Condition{}, &failure{Reason: ReasonDatabaseUserFailed, Err: err}
	}
	r.checks.userNow(us.UID, database, name, password, iso)
	if rotate {
		r.event(us, nil, corev1.EventTypeNormal, eventCredentialsRotated, "Rotate", "New password for database user %s (%s=%s); the pods roll", name, render.AnnotationRotateCredentials, us.Annotations[render.AnnotationRotateCredentials])
	}
	return []byte(uri), isolationCondition(iso, name, database), nil
}

// currentUserURI is the tenant user's URI with the password its
// credentials Secret holds, nil when it holds none or a rotation is pending
// (neither can be served without the server).
func (r *UserServiceReconciler) currentUserURI(us *v1alpha1.UserService, adminURI tenantdb.URI, database string, existing *corev1.Secret) []byte {
	if existing == nil || render.RotationPending(us, existing.Annotations) {
		return nil
	}
	name := DatabaseUserName(us)
	password := passwordOf(existing.Data[render.KeyMongoURI], name)
	if password == "" {
		return nil
	}
	uri, err := tenantdb.UserURI(adminURI.Value(), tenantdb.User{Database: database, Name: name, Password: password})
	if err != nil {
		return nil
	}
	return []byte(uri)
}

func isolationCondition(iso tenantdb.Isolation, user, database string) metav1.Condition {
	if iso == tenantdb.Confined {
		return metav1.Condition{Type: v1alpha1.ConditionDatabaseIsolated, Status: metav1.ConditionTrue, Reason: ReasonUserConfined,
			Message: fmt.Sprintf("database user %s holds readWrite on %s only", user, database)}
	}
	return metav1.Condition{Type: v1alpha1.ConditionDatabaseIsolated, Status: metav1.ConditionFalse, Reason: ReasonStoreHasNoRoles,
		Message: fmt.Sprintf("the MongoDB server refused roles for database user %s (NotImplemented: FerretDB v1 has no authorization): the user authenticates with its own password, but can reach every database of the server", user)}
}

// sharedIsolation and tenantURIIsolation are the conditions of tenants
// without a user of their own.
func sharedIsolation() metav1.Condition {
	return metav1.Condition{Type: v1alpha1.ConditionDatabaseIsolated, Status: metav1.ConditionFalse, Reason: ReasonSharedCredentials,
		Message: "the operator runs with --shared-database-credentials: the tenant's pods hold the default MongoDB URI (namespaces trust each other)"}
}

func tenantURIIsolation() metav1.Condition {
	return metav1.Condition{Type: v1alpha1.ConditionDatabaseIsolated, Status: metav1.ConditionUnknown, Reason: ReasonTenantURI,
		Message: "spec.mongo.uriSecretRef: the tenant's own URI, whose rights the operator does not manage"}
}

// passwordOf is the password in uri when uri is user's, else "".
func passwordOf(uri []byte, user string) string {
	if len(uri) == 0 {
		return ""
	}
	name, password, ok := tenantdb.Credentials(string(uri))
	if !ok || name != user {
		return ""
	}
	return password
}

// newPassword is 32 random bytes in hex: URI-safe, 256 bits.
func newPassword(random io.Reader) (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(random, b); err != nil {
		return "", fmt.Errorf("generate a database password: %w", err)
	}
	return hex.EncodeToString(b), nil
}
