package integration_test

import (
	"context"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/controllers/render"
)

// The tests play what envtest lacks around a pool: the Deployment
// controller (status), the kubelet (pods, which only exist as objects), the
// EndpointSlice controller (the pool Service's slices, labelled as it
// labels them) and the pool process (the applied-Secrets annotation on its
// pods, /work/signals/pool-ack.md).

// newPool creates a pool open to the given namespaces (none: to every
// namespace), running in the operator's namespace.
func newPool(t *testing.T, name string, namespaces []string, mutate ...func(*v1alpha1.UserServicePool)) *v1alpha1.UserServicePool {
	t.Helper()
	p := &v1alpha1.UserServicePool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	p.Spec.NamespaceSelector = &metav1.LabelSelector{}
	if len(namespaces) > 0 {
		p.Spec.NamespaceSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{
			Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: namespaces,
		}}
	}
	for _, m := range mutate {
		m(p)
	}
	if err := k8s.Create(context.Background(), p); err != nil {
		t.Fatalf("create pool: %v", err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), p) })
	return p
}

func poolObjectName(pool string) string {
	return render.PoolObjectName(&v1alpha1.UserServicePool{ObjectMeta: metav1.ObjectMeta{Name: pool}})
}

// poolPods creates n pool pods with addresses 10.77.<k>.<i> and an
// EndpointSlice of the pool's Service listing them as ready. It returns the
// pods' names.
func poolPods(t *testing.T, pool string, k, n int) []string {
	t.Helper()
	ctx := context.Background()
	p := &v1alpha1.UserServicePool{ObjectMeta: metav1.ObjectMeta{Name: pool}}
	var names []string
	var eps []discoveryv1.Endpoint
	for i := range n {
		name := fmt.Sprintf("%s-%d", poolObjectName(pool), i)
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: operatorNamespace, Labels: render.PoolLabels(p)},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "userve", Image: serverImage}}},
		}
		if err := k8s.Create(ctx, pod); err != nil {
			t.Fatalf("create pod: %v", err)
		}
		names = append(names, name)
		yes := true
		eps = append(eps, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.77.%d.%d", k, i+1)},
			Conditions: discoveryv1.EndpointConditions{Ready: &yes},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: operatorNamespace, Name: name, UID: pod.UID},
		})
	}
	labels := render.PoolLabels(p)
	labels[discoveryv1.LabelServiceName] = poolObjectName(pool)
	labels[discoveryv1.LabelManagedBy] = "endpointslice-controller.k8s.io"
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: poolObjectName(pool) + "-abcde", Namespace: operatorNamespace, Labels: labels},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080))}},
	}
	if err := k8s.Create(ctx, slice); err != nil {
		t.Fatalf("create the pool's EndpointSlice: %v", err)
	}
	return names
}

func ptr[T any](v T) *T { return &v }

// ackPods plays the pool process: each pod records that it has applied
// the Secrets up to resourceVersion rv.
func ackPods(t *testing.T, pods []string, rv string) {
	t.Helper()
	for _, name := range pods {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var pod corev1.Pod
			if err := get(t, &pod, operatorNamespace, name); err != nil {
				return err
			}
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[v1alpha1.PoolAppliedAnnotation] = rv
			return k8s.Update(context.Background(), &pod)
		})
		if err != nil {
			t.Fatalf("annotate pod %s: %v", name, err)
		}
	}
}

// poolSecret waits for the tenant's Secret in the pool's namespace.
func poolSecret(t *testing.T, pool string, us *v1alpha1.UserService) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	eventually(t, "the tenant's Secret in the pool's namespace", func() error {
		return get(t, &s, operatorNamespace, v1alpha1.PoolTenantSecretName(pool, us.Namespace, us.Name))
	})
	return &s
}

func service(t *testing.T, us *v1alpha1.UserService) *corev1.Service {
	t.Helper()
	var s corev1.Service
	if err := get(t, &s, us.Namespace, us.Name); err != nil {
		t.Fatal(err)
	}
	return &s
}

// gone waits until the object does not exist.
func gone(t *testing.T, what string, get func() error) {
	t.Helper()
	eventually(t, what+" is gone", func() error {
		err := get()
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (err %v)", err)
	})
}

// markPoolAvailable plays the Deployment controller for a pool.
func markPoolAvailable(t *testing.T, pool string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var d appsv1.Deployment
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: operatorNamespace, Name: poolObjectName(pool)}, &d); err != nil {
			return err
		}
		n := *d.Spec.Replicas
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
		return k8s.Status().Update(context.Background(), &d)
	})
	if err != nil {
		t.Fatalf("set the pool Deployment's status: %v", err)
	}
}

// dedicatedSlice plays the EndpointSlice controller for a tenant's Service
// with a selector: its own pod, ready.
func dedicatedSlice(t *testing.T, us *v1alpha1.UserService, suffix string) {
	t.Helper()
	labels := render.Labels(us)
	labels[discoveryv1.LabelServiceName] = us.Name
	labels[discoveryv1.LabelManagedBy] = "endpointslice-controller.k8s.io"
	yes := true
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: us.Name + "-" + suffix, Namespace: us.Namespace, Labels: labels},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.88.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080))}},
	}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatalf("create the tenant's own EndpointSlice: %v", err)
	}
}

// dedicatedEndpoints plays the Endpoints controller for a tenant's Service
// with a selector.
func dedicatedEndpoints(t *testing.T, us *v1alpha1.UserService) {
	t.Helper()
	ep := &corev1.Endpoints{ //nolint:staticcheck // what the Endpoints controller still writes
		ObjectMeta: metav1.ObjectMeta{Name: us.Name, Namespace: us.Namespace, Labels: render.Labels(us)},
		Subsets:    []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "10.88.0.1"}}, Ports: []corev1.EndpointPort{{Name: "http", Port: 8080}}}},
	}
	if err := k8s.Create(context.Background(), ep); err != nil {
		t.Fatalf("create the tenant's Endpoints: %v", err)
	}
}
