package opbench

import (
	"context"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// readyLoop stands in for the Deployment controller and the kubelets, which
// envtest does not run: every Deployment that is not yet ready at its
// current generation gets a status saying all its replicas are ready.
type readyLoop struct {
	cache  cache.Cache
	client client.Client
	queue  workqueue.TypedRateLimitingInterface[types.NamespacedName]

	mu      sync.Mutex
	updates int
}

func startReadyLoop(ctx context.Context, c cache.Cache, cl client.Client, workers int) (*readyLoop, error) {
	l := &readyLoop{cache: c, client: cl, queue: workqueue.NewTypedRateLimitingQueue(
		workqueue.NewTypedItemExponentialFailureRateLimiter[types.NamespacedName](5*time.Millisecond, time.Second))}
	inf, err := c.GetInformer(ctx, &appsv1.Deployment{})
	if err != nil {
		return nil, err
	}
	enqueue := func(obj any) {
		if d, ok := obj.(*appsv1.Deployment); ok && !isReady(d) {
			l.queue.Add(types.NamespacedName{Namespace: d.Namespace, Name: d.Name})
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		return nil, err
	}
	for i := 0; i < workers; i++ {
		go l.work(ctx)
	}
	go func() { <-ctx.Done(); l.queue.ShutDown() }()
	return l, nil
}

func (l *readyLoop) work(ctx context.Context) {
	for {
		key, shutdown := l.queue.Get()
		if shutdown {
			return
		}
		err := l.markReady(ctx, key)
		if err != nil && ctx.Err() == nil {
			l.queue.AddRateLimited(key)
		} else {
			l.queue.Forget(key)
		}
		l.queue.Done(key)
	}
}

func (l *readyLoop) markReady(ctx context.Context, key types.NamespacedName) error {
	var d appsv1.Deployment
	if err := l.cache.Get(ctx, key, &d); err != nil {
		return client.IgnoreNotFound(err)
	}
	if isReady(&d) {
		return nil
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	now := metav1.Now()
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation,
		Replicas:           want, UpdatedReplicas: want, ReadyReplicas: want, AvailableReplicas: want,
		Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable",
				Message: "marked ready by the bench", LastUpdateTime: now, LastTransitionTime: now},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable",
				Message: "marked ready by the bench", LastUpdateTime: now, LastTransitionTime: now},
		},
	}
	if err := l.client.Status().Update(ctx, &d); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err // a conflict: the cache is behind; retried
	}
	l.mu.Lock()
	l.updates++
	l.mu.Unlock()
	return nil
}

// isReady is what a Deployment controller would report once every replica
// of the current generation is up.
func isReady(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	return s.ObservedGeneration == d.Generation && s.Replicas == want && s.UpdatedReplicas == want &&
		s.ReadyReplicas == want && s.AvailableReplicas == want
}
