package sandbox

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/sandbox/catcher"
)

// reservedHost reports why host cannot be a real delivery target from this
// machine without asking the network: a cluster-only name, or a name that
// RFC 2606 / RFC 6761 reserve for examples and tests.
func reservedHost(host string) (string, bool) {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	switch {
	case h == "":
		return "", false
	case strings.HasSuffix(h, ".svc") || strings.HasSuffix(h, ".svc.cluster.local") || strings.HasSuffix(h, ".cluster.local"):
		return "a cluster address", true
	}
	for _, d := range []string{"example.com", "example.net", "example.org", "example", "test", "invalid"} {
		if h == d || strings.HasSuffix(h, "."+d) {
			return "a reserved example name", true
		}
	}
	return "", false
}

// dialFunc connects to a TCP address (net.Dialer's DialContext); tests pass
// their own.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// unreachable reports whether host:port cannot be reached from here, and
// why: a reserved name at once, else a TCP connection that fails within 2 s.
func unreachable(ctx context.Context, dial dialFunc, host string, port int) (string, bool) {
	if why, ok := reservedHost(host); ok {
		return why, true
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := dial(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return "not reachable from this machine", true
	}
	conn.Close()
	return "", false
}

// localizeDeliveries points the sample UserServices' code delivery that
// cannot work from this machine at the sandbox's catcher: an SMS webhook
// URL becomes the webhook sink, an SMTP relay the SMTP sink. Secrets and
// usernames stay, so the sinks check the tenant's real signature and
// password. It returns one note per change.
func localizeDeliveries(ctx context.Context, objs []*unstructured.Unstructured, c *catcher.Catcher, dial dialFunc) ([]string, error) {
	var notes []string
	for _, o := range objs {
		if o.GetKind() != "UserService" || o.GroupVersionKind().Group != v1alpha1.GroupVersion.Group {
			continue
		}
		raw, found, err := unstructured.NestedString(o.Object, "spec", "verification", "sms", "webhook", "url")
		if err != nil {
			return nil, fmt.Errorf("UserService %s: spec.verification.sms.webhook.url: %w", o.GetName(), err)
		}
		if found && raw != "" {
			u, err := url.Parse(raw)
			if err != nil || u.Hostname() == "" {
				return nil, fmt.Errorf("UserService %s: spec.verification.sms.webhook.url %q is not a URL", o.GetName(), raw)
			}
			port, _ := strconv.Atoi(u.Port())
			if port == 0 {
				port = map[string]int{"http": 80, "https": 443}[u.Scheme]
			}
			if why, ok := unreachable(ctx, dial, u.Hostname(), port); ok {
				if err := unstructured.SetNestedField(o.Object, c.WebhookURL, "spec", "verification", "sms", "webhook", "url"); err != nil {
					return nil, err
				}
				notes = append(notes, fmt.Sprintf("UserService %s SMS webhook %s is %s; its codes go to the sandbox's webhook sink %s and are printed below",
					o.GetName(), u.Host, why, c.WebhookURL))
			}
		}
		if raw, found, _ := unstructured.NestedString(o.Object, "spec", "events", "webhook", "url"); found && raw != "" {
			u, err := url.Parse(raw)
			if err != nil || u.Hostname() == "" {
				return nil, fmt.Errorf("UserService %s: spec.events.webhook.url %q is not a URL", o.GetName(), raw)
			}
			port, _ := strconv.Atoi(u.Port())
			if port == 0 {
				port = map[string]int{"http": 80, "https": 443}[u.Scheme]
			}
			if why, ok := unreachable(ctx, dial, u.Hostname(), port); ok {
				unstructured.RemoveNestedField(o.Object, "spec", "events")
				notes = append(notes, fmt.Sprintf("UserService %s event webhook %s is %s; its events are off in the sandbox (docs/events.md)", o.GetName(), u.Host, why))
			}
		}
		host, found, err := unstructured.NestedString(o.Object, "spec", "verification", "mail", "smtp", "host")
		if err != nil {
			return nil, fmt.Errorf("UserService %s: spec.verification.mail.smtp.host: %w", o.GetName(), err)
		}
		if found && host != "" {
			var port int64
			switch v, _, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "verification", "mail", "smtp", "port"); n := v.(type) {
			case nil:
			case int64:
				port = n
			case float64: // JSON numbers of a decoded manifest
				port = int64(n)
			default:
				return nil, fmt.Errorf("UserService %s: spec.verification.mail.smtp.port %v is not a number", o.GetName(), v)
			}
			if port == 0 {
				port = v1alpha1.DefaultSMTPPort
			}
			if why, ok := unreachable(ctx, dial, host, int(port)); ok {
				smtp := map[string]any{"host": c.SMTPHost, "port": int64(c.SMTPPort)}
				for k, v := range smtp {
					if err := unstructured.SetNestedField(o.Object, v, "spec", "verification", "mail", "smtp", k); err != nil {
						return nil, err
					}
				}
				notes = append(notes, fmt.Sprintf("UserService %s SMTP relay %s is %s; its mail goes to the sandbox's SMTP sink %s and codes are printed below",
					o.GetName(), net.JoinHostPort(host, strconv.FormatInt(port, 10)), why, c.SMTPAddr()))
			}
		}
	}
	return notes, nil
}

// kubeDirectory answers the sinks from the cluster: a tenant's webhook
// secret and SMTP password are read from the Secrets its UserService names,
// at each delivery (a changed Secret counts at once).
type kubeDirectory struct{ c client.Reader }

func (d kubeDirectory) WebhookSecret(ctx context.Context, tenant string) ([]byte, error) {
	ns, name, ok := strings.Cut(tenant, "/")
	if !ok {
		return nil, fmt.Errorf("tenant %q is not namespace/name", tenant)
	}
	var us v1alpha1.UserService
	if err := d.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &us); err != nil {
		return nil, err
	}
	sms := us.Spec.Verification.SMS
	if sms == nil || sms.Webhook == nil {
		return nil, fmt.Errorf("UserService %s has no SMS webhook", tenant)
	}
	if sms.Webhook.SecretRef == nil {
		return nil, nil // the server signs with an empty key
	}
	return d.secretValue(ctx, ns, *sms.Webhook.SecretRef)
}

func (d kubeDirectory) SMTPTenants(ctx context.Context, host string, port int) ([]catcher.SMTPTenant, error) {
	var list v1alpha1.UserServiceList
	if err := d.c.List(ctx, &list); err != nil {
		return nil, err
	}
	var out []catcher.SMTPTenant
	for _, us := range list.Items {
		m := us.Spec.Verification.Mail
		if m == nil || m.SMTP == nil || m.SMTP.Host != host || int(m.SMTP.Port) != port {
			continue
		}
		t := catcher.SMTPTenant{Tenant: us.Namespace + "/" + us.Name, From: m.SMTP.From, Username: m.SMTP.Username}
		if m.SMTP.PasswordSecretRef != nil {
			pw, err := d.secretValue(ctx, us.Namespace, *m.SMTP.PasswordSecretRef)
			if err != nil {
				continue // this tenant cannot log in; others may
			}
			t.Password = pw
		}
		out = append(out, t)
	}
	return out, nil
}

func (d kubeDirectory) secretValue(ctx context.Context, ns string, ref v1alpha1.SecretKeyRef) ([]byte, error) {
	var s corev1.Secret
	if err := d.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, &s); err != nil {
		return nil, err
	}
	v, ok := s.Data[ref.Key]
	if !ok {
		return nil, fmt.Errorf("secret %s/%s has no key %s", ns, ref.Name, ref.Key)
	}
	return v, nil
}

// printCode prints a caught code with the fields the log delivery logs.
func printCode(p *printer, c catcher.Code) {
	tenant := c.Tenant
	if tenant == "" {
		tenant = "(unknown tenant)"
	}
	extra := ""
	switch {
	case c.ExpiresIn > 0:
		extra = fmt.Sprintf(" purpose=%s expires_in=%s", c.Purpose, c.ExpiresIn)
	case c.Subject != "":
		extra = fmt.Sprintf(" subject=%q", c.Subject)
	}
	p.eventf("%s: verification code (sandbox %s sink) channel=%s to=%s code=%s%s", tenant, c.Via, c.Channel, c.To, c.Code, extra)
}
