package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Defaults the CRD applies through its schema, repeated here for manifests
// that never passed through an API server (`userve serve --config` by hand).
// TestDefaultsMatchCRD keeps the two in step.
const (
	DefaultMinAppLimit    = 20
	DefaultMinAppMaxLimit = 1000
	// DefaultAuditRetentionDays keeps the audit log for about six months.
	DefaultAuditRetentionDays = 180
	DefaultPlusLimit          = 20
	DefaultPlusMaxLimit       = 50
	DefaultTokenTTL           = time.Hour
	DefaultRefreshTTL         = 14 * 24 * time.Hour
	DefaultReauthWindow       = 10 * time.Minute
	DefaultLoginHistory       = 30 * 24 * time.Hour
	DefaultCodeTTL            = 5 * time.Minute
	DefaultSMTPPort           = 587

	DefaultCodesPerAddressHourly = 30
	DefaultCodesPerTargetDaily   = 10
	DefaultCodesPerTenantHourly  = 1000

	DefaultAutoscalingMinReplicas = 1
	DefaultTargetCPUUtilization   = 80
	DefaultPDBMinAvailable        = 1

	DefaultWeChatAPIBaseURL = "https://api.weixin.qq.com"
)

// SetDefaults fills in every unset field the CRD schema would default.
func SetDefaults(us *UserService) {
	s := &us.Spec
	if s.DeletionPolicy == "" {
		s.DeletionPolicy = DeletionPolicyRetain
	}
	m := &s.API.MinApp
	m.Enabled = defaultBool(m.Enabled, true)
	m.DefaultLimit = defaultInt32(m.DefaultLimit, DefaultMinAppLimit)
	m.MaxLimit = defaultInt32(m.MaxLimit, DefaultMinAppMaxLimit)
	m.AuditRetentionDays = defaultInt32(m.AuditRetentionDays, DefaultAuditRetentionDays)
	s.API.Console.Enabled = defaultBool(s.API.Console.Enabled, true)
	p := &s.API.Plus
	p.Enabled = defaultBool(p.Enabled, true)
	p.DefaultLimit = defaultInt32(p.DefaultLimit, DefaultPlusLimit)
	p.MaxLimit = defaultInt32(p.MaxLimit, DefaultPlusMaxLimit)
	p.TokenTTL = defaultDuration(p.TokenTTL, DefaultTokenTTL)
	p.RefreshTTL = defaultDuration(p.RefreshTTL, DefaultRefreshTTL)
	p.ReauthWindow = defaultDuration(p.ReauthWindow, DefaultReauthWindow)
	p.LoginHistory = defaultDuration(p.LoginHistory, DefaultLoginHistory)
	v := &s.Verification
	v.CodeTTL = defaultDuration(v.CodeTTL, DefaultCodeTTL)
	l := &v.Limits
	l.PerAddressHourly = defaultInt32(l.PerAddressHourly, DefaultCodesPerAddressHourly)
	l.PerTargetDaily = defaultInt32(l.PerTargetDaily, DefaultCodesPerTargetDaily)
	l.PerTenantHourly = defaultInt32(l.PerTenantHourly, DefaultCodesPerTenantHourly)
	if v.Mail != nil && v.Mail.SMTP != nil {
		v.Mail.SMTP.Port = defaultInt32(v.Mail.SMTP.Port, DefaultSMTPPort)
	}
	if a := s.Autoscaling; a != nil {
		if a.MinReplicas == nil {
			a.MinReplicas = ptrTo(int32(DefaultAutoscalingMinReplicas))
		}
		if a.TargetCPUUtilizationPercentage == nil {
			a.TargetCPUUtilizationPercentage = ptrTo(int32(DefaultTargetCPUUtilization))
		}
	}
	if wc := s.WeChat; wc != nil {
		if wc.APIBaseURL == "" {
			wc.APIBaseURL = DefaultWeChatAPIBaseURL
		}
		wc.CreateUsers = defaultBool(wc.CreateUsers, true)
	}
	if pdb := s.PodDisruptionBudget; pdb != nil && pdb.MinAvailable == nil {
		v := intstr.FromInt32(DefaultPDBMinAvailable)
		pdb.MinAvailable = &v
	}
}

func ptrTo[T any](v T) *T { return &v }

// Enabled reports a defaulted *bool.
func Enabled(b *bool) bool { return b == nil || *b }

func defaultBool(b *bool, def bool) *bool {
	if b == nil {
		return &def
	}
	return b
}

func defaultInt32(v, def int32) int32 {
	if v == 0 {
		return def
	}
	return v
}

func defaultDuration(d *metav1.Duration, def time.Duration) *metav1.Duration {
	if d == nil || d.Duration == 0 {
		return &metav1.Duration{Duration: def}
	}
	return d
}

// ConsoleEnabled reports whether the tenant console is served: it is on by
// default, and only where the management API is on.
func ConsoleEnabled(s *UserServiceSpec) bool {
	return Enabled(s.API.MinApp.Enabled) && Enabled(s.API.Console.Enabled)
}

// HServeEnabled reports whether the MinApp client SDK dialect is on.
func HServeEnabled(s *UserServiceSpec) bool { return s.API.HServe != nil && s.API.HServe.Enabled }
