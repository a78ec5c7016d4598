package mongouri

import (
	"errors"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo/address"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
)

// FuzzCheck: whatever the text, Check never panics, never quotes a
// password, and a URI it allows parses (as the driver reads it) to no
// authentication or SCRAM, no mechanism properties, only allowed options
// and TCP hosts; the client options built from an allowed mongodb:// URI
// carry no client certificate and no skipped verification.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		"mongodb://127.0.0.1:27017/",
		"mongodb://u:p@h/?authMechanism=SCRAM-SHA-256",
		"mongodb://h/?authMechanism=MONGODB-OIDC&authMechanismProperties=ENVIRONMENT:k8s",
		"mongodb://h/?tlsCAFile=/etc/passwd&tls=true",
		"mongodb://h/?AUTHMECHANISM=mongodb-aws",
		"mongodb://h/?authMechanism=SCRAM-SHA-1&authMechanism=MONGODB-AWS",
		"mongodb://%2Ftmp%2Fm.sock/",
		"mongodb+srv://c.example.net/?tlsInsecure=true",
		"mongodb://h/?authmechanismproperties=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		err := Check(uri)
		if err != nil {
			// Parsing a mongodb+srv URI resolves it: read it as mongodb://.
			text := strings.Replace(uri, connstring.SchemeMongoDBSRV+"://", connstring.SchemeMongoDB+"://", 1)
			if cs, perr := connstring.Parse(text); perr == nil && len(cs.Password) >= 4 && strings.Contains(err.Error(), cs.Password) {
				t.Fatalf("the refusal quotes the password: %v", err)
			}
			var r *RefusedError
			if !errors.As(err, &r) && !errors.Is(err, ErrUnparsable) {
				t.Fatalf("Check = %v: neither a refusal nor ErrUnparsable", err)
			}
			return
		}
		if strings.HasPrefix(uri, connstring.SchemeMongoDBSRV+"://") {
			return // resolving it needs the network
		}
		cs, perr := connstring.ParseAndValidate(uri)
		if perr != nil {
			t.Fatalf("Check allowed a URI the driver refuses: %v", perr)
		}
		if m := strings.ToUpper(cs.AuthMechanism); m != "" && m != "SCRAM-SHA-256" && m != "SCRAM-SHA-1" {
			t.Fatalf("allowed mechanism %q", cs.AuthMechanism)
		}
		if cs.AuthMechanismPropertiesSet || len(cs.AuthMechanismProperties) > 0 {
			t.Fatalf("allowed mechanism properties %v", cs.AuthMechanismProperties)
		}
		if cs.SSLCaFileSet || cs.SSLClientCertificateKeyFileSet || cs.SSLCertificateFileSet || cs.SSLPrivateKeyFileSet ||
			cs.SSLClientCertificateKeyPasswordSet || cs.SSLInsecureSet || cs.SSLDisableOCSPEndpointCheckSet || cs.SSLDisableCertificateRevocationCheckSet {
			t.Fatal("allowed a TLS file or a weakened check")
		}
		for k := range cs.Options {
			if _, ok := allowedOptions[k]; !ok {
				t.Fatalf("allowed option %q", k)
			}
		}
		for _, h := range cs.Hosts {
			if address.Address(h).Network() != "tcp" {
				t.Fatalf("allowed host %q", h)
			}
		}
		co, err := ClientOptions(uri)
		if err != nil {
			return // e.g. the driver's later checks; refused either way
		}
		if tc := co.TLSConfig; tc != nil && (tc.InsecureSkipVerify || len(tc.Certificates) > 0) {
			t.Fatal("client options skip verification or carry a certificate")
		}
		if a := co.Auth; a != nil && (len(a.AuthMechanismProperties) > 0 || a.OIDCMachineCallback != nil) {
			t.Fatalf("client options carry %+v", a)
		}
	})
}
