package sandbox

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"userve.dev/userve/sandbox/catcher"
	"userve.dev/userve/server/verify"
	"userve.dev/userve/test/testbin"
)

func TestReservedHost(t *testing.T) {
	for host, want := range map[string]bool{
		"sms-relay.acme.example.com": true, "example.org": true, "smtp.shop.test": true, "x.invalid": true,
		"relay.example": true, "mail.databases.svc": true, "smtp.mail.svc.cluster.local": true,
		"SMTP.ACME.EXAMPLE.COM.": true,
		"smtp.gmail.com":         false, "127.0.0.1": false, "notexample.com": false, "example.com.cn": false, "": false,
	} {
		if _, got := reservedHost(host); got != want {
			t.Errorf("reservedHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// The repository's full sample (acme) names example.com relays: both are
// pointed at the sandbox's sinks, with a note each, keeping its secrets and
// username, so the server's real senders get through with the sample's own
// credentials. A relay that answers is left alone; one that does not is
// replaced too.
func TestLocalizeDeliveriesPointsTheSamplesAtTheCatcher(t *testing.T) {
	ctx := context.Background()
	const ns = "deliveries-test"
	root, err := testbin.Root()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := readSamples(filepath.Join(root, "config", "samples"))
	if err != nil {
		t.Fatal(err)
	}
	// A relay that answers (a listener here), and one that does not.
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	upPort := up.Addr().(*net.TCPAddr).Port
	extra, err := decodeManifests([]byte(`
apiVersion: miniapp.userve.dev/v1alpha1
kind: UserService
metadata: {name: reachable}
spec:
  verification:
    sms: {webhook: {url: "http://127.0.0.1:` + strconv.Itoa(upPort) + `/hook", secretRef: {name: acme-delivery, key: webhook-secret}}}
    mail: {smtp: {host: 127.0.0.1, port: ` + strconv.Itoa(upPort) + `, from: a@b.c}}
---
apiVersion: miniapp.userve.dev/v1alpha1
kind: UserService
metadata: {name: down}
spec:
  verification:
    mail: {smtp: {host: mail.corp.internal, from: a@b.c}}
`))
	if err != nil {
		t.Fatal(err)
	}
	objs = append(objs, extra...)
	objs = append([]*unstructured.Unstructured{{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}}, objs...)
	for _, o := range objs[1:] {
		o.SetNamespace(ns)
	}

	var mu sync.Mutex
	var caught []catcher.Code
	var dialed []string
	sinks, err := catcher.Start(catcher.Options{
		WebhookAddr: "127.0.0.1:0", SMTPAddr: "127.0.0.1:0",
		Directory: kubeDirectory{c: env.Client},
		Caught:    func(c catcher.Code) { mu.Lock(); caught = append(caught, c); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sinks.Close()
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed = append(dialed, addr)
		if strings.HasPrefix(addr, "mail.corp.internal:") {
			return nil, errors.New("no such host")
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	if _, _, err := localizeSecrets(objs, "mongodb://127.0.0.1:1/"); err != nil {
		t.Fatal(err)
	}
	notes, err := localizeDeliveries(ctx, objs, sinks, dial)
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 4 ||
		!strings.Contains(notes[0], "UserService acme SMS webhook sms-relay.acme.example.com is a reserved example name; its codes go to the sandbox's webhook sink "+sinks.WebhookURL) ||
		!strings.Contains(notes[1], "UserService acme event webhook hooks.acme.example.com is a reserved example name; its events are off in the sandbox") ||
		!strings.Contains(notes[2], "UserService acme SMTP relay smtp.acme.example.com:587 is a reserved example name; its mail goes to the sandbox's SMTP sink "+sinks.SMTPAddr()) ||
		!strings.Contains(notes[3], "UserService down SMTP relay mail.corp.internal:587 is not reachable from this machine") {
		t.Errorf("notes:\n%s", strings.Join(notes, "\n"))
	}
	// Reserved names are never dialed.
	for _, a := range dialed {
		if strings.Contains(a, "example.com") {
			t.Errorf("dialed %s", a)
		}
	}
	byName := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		byName[o.GetKind()+"/"+o.GetName()] = o
	}
	field := func(name string, path ...string) any {
		v, _, _ := unstructured.NestedFieldNoCopy(byName["UserService/"+name].Object, path...)
		return v
	}
	if got := field("reachable", "spec", "verification", "sms", "webhook", "url"); got != "http://127.0.0.1:"+strconv.Itoa(upPort)+"/hook" {
		t.Errorf("a reachable webhook was changed to %v", got)
	}
	if got := field("down", "spec", "verification", "mail", "smtp", "port"); got != int64(sinks.SMTPPort) {
		t.Errorf("down's SMTP port = %v", got)
	}
	if got := field("acme", "spec", "verification", "mail", "smtp", "username"); got != "no-reply@acme.example.com" {
		t.Errorf("acme's SMTP username changed to %v", got)
	}

	if _, err := applySamples(ctx, env.Client, objs); err != nil {
		t.Fatal(err)
	}
	// The real senders, with the sample Secrets' values, as acme's server
	// would send them.
	msg := verify.Message{Tenant: ns + "/acme", Channel: verify.ChannelSMS, To: "+8613800000000", Code: "271828", Purpose: "register", TTL: 10 * time.Minute}
	url, _ := field("acme", "spec", "verification", "sms", "webhook", "url").(string)
	if err := (verify.WebhookSender{URL: url, Secret: []byte("acme-webhook-hmac-change-me")}).Send(ctx, msg); err != nil {
		t.Fatalf("webhook: %v", err)
	}
	if err := (verify.WebhookSender{URL: url, Secret: []byte("not-acme's")}).Send(ctx, msg); err == nil {
		t.Error("a webhook signed with another secret was taken")
	}
	mailMsg := msg
	mailMsg.Channel, mailMsg.To = verify.ChannelMail, "alice@example.org"
	host, _ := field("acme", "spec", "verification", "mail", "smtp", "host").(string)
	port, _ := field("acme", "spec", "verification", "mail", "smtp", "port").(int64)
	smtp := verify.SMTPSender{Host: host, Port: int(port), From: "no-reply@acme.example.com", Username: "no-reply@acme.example.com", Password: "acme-smtp-password-change-me"}
	if err := smtp.Send(ctx, mailMsg); err != nil {
		t.Fatalf("smtp: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(caught) != 2 ||
		caught[0] != (catcher.Code{Tenant: ns + "/acme", Channel: "sms", Via: "webhook", To: "+8613800000000", Code: "271828", Purpose: "register", ExpiresIn: 10 * time.Minute}) ||
		caught[1].Tenant != ns+"/acme" || caught[1].Code != "271828" || caught[1].To != "alice@example.org" {
		t.Errorf("caught %+v", caught)
	}
}

func TestPrintCodeReadsLikeTheLogDelivery(t *testing.T) {
	var b strings.Builder
	p := &printer{out: &b}
	printCode(p, catcher.Code{Tenant: "default/acme", Channel: "sms", Via: "webhook", To: "+8613800000000", Code: "493817", Purpose: "register", ExpiresIn: 10 * time.Minute})
	printCode(p, catcher.Code{Channel: "mail", Via: "smtp", To: "a@b.c", Code: "1", Subject: "Your verification code"})
	out := b.String()
	for _, want := range []string{
		"default/acme: verification code (sandbox webhook sink) channel=sms to=+8613800000000 code=493817 purpose=register expires_in=10m0s\n",
		"(unknown tenant): verification code (sandbox smtp sink) channel=mail to=a@b.c code=1 subject=\"Your verification code\"\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
