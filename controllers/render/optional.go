package render

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"userve.dev/userve/api/v1alpha1"
)

// Ingress routes spec.ingress.host to the tenant's Service; nil without
// spec.ingress.
func Ingress(us *v1alpha1.UserService) *networkingv1.Ingress {
	in := us.Spec.Ingress
	if in == nil {
		return nil
	}
	ing := &networkingv1.Ingress{
		ObjectMeta: objectMeta(us, us.Name),
		Spec: networkingv1.IngressSpec{
			IngressClassName: in.ClassName,
			Rules: []networkingv1.IngressRule{{
				Host: in.Host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path:     "/",
						PathType: ptrTo(networkingv1.PathTypePrefix),
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: us.Name,
							Port: networkingv1.ServiceBackendPort{Name: PortName},
						}},
					}},
				}},
			}},
		},
	}
	if in.TLSSecretName != "" {
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{in.Host}, SecretName: in.TLSSecretName}}
	}
	return ing
}

// HorizontalPodAutoscaler scales the Deployment on CPU; nil without
// spec.autoscaling or while suspended (a suspended tenant stays at zero).
func HorizontalPodAutoscaler(us *v1alpha1.UserService) *autoscalingv2.HorizontalPodAutoscaler {
	as := us.Spec.Autoscaling
	if as == nil || us.Spec.Suspend {
		return nil
	}
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: objectMeta(us, us.Name),
		Spec:       hpaSpec(as, us.Name),
	}
}

// hpaSpec scales the Deployment named deployment on CPU.
func hpaSpec(as *v1alpha1.AutoscalingSpec, deployment string) autoscalingv2.HorizontalPodAutoscalerSpec {
	minReplicas, target := int32(v1alpha1.DefaultAutoscalingMinReplicas), int32(v1alpha1.DefaultTargetCPUUtilization)
	if as.MinReplicas != nil {
		minReplicas = *as.MinReplicas
	}
	if as.TargetCPUUtilizationPercentage != nil {
		target = *as.TargetCPUUtilizationPercentage
	}
	return autoscalingv2.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: deployment},
		MinReplicas:    &minReplicas,
		MaxReplicas:    as.MaxReplicas,
		Metrics: []autoscalingv2.MetricSpec{{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{
				Name:   corev1.ResourceCPU,
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &target},
			},
		}},
	}
}

// PodDisruptionBudget keeps spec.podDisruptionBudget.minAvailable pods
// through voluntary disruptions; nil without spec.podDisruptionBudget.
func PodDisruptionBudget(us *v1alpha1.UserService) *policyv1.PodDisruptionBudget {
	p := us.Spec.PodDisruptionBudget
	if p == nil {
		return nil
	}
	minAvailable := intstr.FromInt32(v1alpha1.DefaultPDBMinAvailable)
	if p.MinAvailable != nil {
		minAvailable = *p.MinAvailable
	}
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: objectMeta(us, us.Name),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: &minAvailable,
			Selector:     &metav1.LabelSelector{MatchLabels: SelectorLabels(us)},
		},
	}
}
