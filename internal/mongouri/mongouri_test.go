package mongouri

import (
	"errors"
	"strings"
	"testing"
)

func TestAllowedURIs(t *testing.T) {
	for _, uri := range []string{
		"mongodb://127.0.0.1:27017/",
		"mongodb://mongo.db.svc:27017/app",
		"mongodb://user:p%40ss@mongo:27017/app?authSource=admin",
		"mongodb://user:pass@mongo/?authMechanism=SCRAM-SHA-256",
		"mongodb://user:pass@mongo/?authMechanism=SCRAM-SHA-1",
		"mongodb://user:pass@mongo/?authMechanism=scram-sha-256",
		"mongodb://a:1,b:2,c:3/?replicaSet=rs0&readPreference=secondaryPreferred&w=majority&retryWrites=true",
		"mongodb://mongo/?tls=true&appName=x&maxPoolSize=5&connectTimeoutMS=100&serverSelectionTimeoutMS=100&timeoutMS=100",
		"mongodb://mongo/?compressors=zstd,zlib&zlibCompressionLevel=5&directConnection=true",
		"mongodb+srv://user:pass@cluster0.example.net/?retryWrites=true&w=majority&appName=Cluster0",
	} {
		if err := Check(uri); err != nil {
			t.Errorf("Check(%q) = %v, want nil", uri, err)
		}
	}
}

func TestRefusedURIsNameWhatIsRefused(t *testing.T) {
	for _, tc := range []struct{ uri, names string }{
		{"mongodb://mongo/?authMechanism=MONGODB-OIDC&authMechanismProperties=ENVIRONMENT:k8s", "authMechanism=MONGODB-OIDC"},
		{"mongodb://mongo/?authMechanism=MONGODB-OIDC&authMechanismProperties=ENVIRONMENT:azure,TOKEN_RESOURCE:api://x", "authMechanism=MONGODB-OIDC"},
		{"mongodb://mongo/?authMechanism=MONGODB-OIDC&authMechanismProperties=ENVIRONMENT:gcp,TOKEN_RESOURCE:x", "authMechanism=MONGODB-OIDC"},
		{"mongodb://mongo/?authMechanism=MONGODB-OIDC", "authMechanism=MONGODB-OIDC"},
		{"mongodb://mongo/?authMechanism=MONGODB-AWS", "authMechanism=MONGODB-AWS"},
		{"mongodb://k:s@mongo/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:t", "authMechanism=MONGODB-AWS"},
		{"mongodb://mongo/?authMechanism=MONGODB-X509&tls=true", "authMechanism=MONGODB-X509"},
		{"mongodb://u@mongo/?authMechanism=GSSAPI", "authMechanism=GSSAPI"},
		{"mongodb://u:p@mongo/?authMechanism=PLAIN", "authMechanism=PLAIN"},
		{"mongodb://u:p@mongo/?authMechanism=MONGODB-CR", "authMechanism=MONGODB-CR"},
		// URIs the driver's parser itself rejects still name what is refused.
		{"mongodb://mongo/?authMechanism=MONGODB-OIDC&authSource=admin", "authMechanism=MONGODB-OIDC"},
		{"mongodb://u:p@mongo/?authMechanism=FOO", "authMechanism=FOO"},
		{"mongodb://u:p@mongo/?authMechanism=SCRAM-SHA-256&authMechanismProperties=A:b", "authMechanismProperties"},
		{"mongodb://u:p@mongo/?authMechanismProperties=ENVIRONMENT:k8s", "authMechanismProperties"},
		{"mongodb://mongo/?tls=true&tlsCAFile=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", "tlsCAFile"},
		{"mongodb://mongo/?ssl=true&sslCertificateAuthorityFile=/etc/passwd", "sslCertificateAuthorityFile"},
		{"mongodb://mongo/?tls=true&tlsCertificateKeyFile=/etc/key.pem", "tlsCertificateKeyFile"},
		{"mongodb://mongo/?tls=true&tlsCertificateKeyFilePassword=x", "tlsCertificateKeyFilePassword"},
		{"mongodb://mongo/?ssl=true&sslClientCertificateKeyFile=/etc/key.pem", "sslClientCertificateKeyFile"},
		{"mongodb://mongo/?tls=true&tlsCertificateFile=/a&tlsPrivateKeyFile=/b", "tlsCertificateFile"},
		{"mongodb://mongo/?tls=true&tlsPrivateKeyFile=/b", "tlsPrivateKeyFile"},
		{"mongodb://mongo/?tls=true&tlsInsecure=true", "tlsInsecure"},
		{"mongodb://mongo/?tls=true&tlsAllowInvalidCertificates=true", "tlsAllowInvalidCertificates"},
		{"mongodb://mongo/?tls=true&tlsAllowInvalidHostnames=true", "tlsAllowInvalidHostnames"},
		{"mongodb://mongo/?tls=true&tlsDisableOCSPEndpointCheck=true", "tlsDisableOCSPEndpointCheck"},
		{"mongodb://mongo/?tls=true&tlsDisableCertificateRevocationCheck=true", "tlsDisableCertificateRevocationCheck"},
		{"mongodb://mongo/?proxyHost=10.0.0.1&proxyPort=1080", "proxyHost"},
		{"mongodb://mongo/?proxyUsername=a&proxyPassword=b", "proxyPassword"},
		{"mongodb://mongo/?someFutureOption=1", "option somefutureoption"},
		{"mongodb://%2Fvar%2Frun%2Fdocker.sock/", "host /var/run/docker.sock"},
		{"mongodb+srv://cluster.example.net/?authMechanism=MONGODB-AWS", "authMechanism=MONGODB-AWS"},
		{"mongodb+srv://cluster.example.net/?tlsCAFile=/etc/passwd", "tlsCAFile"},
	} {
		err := Check(tc.uri)
		var r *RefusedError
		if !errors.As(err, &r) {
			t.Errorf("Check(%q) = %v, want a refusal", tc.uri, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.names) {
			t.Errorf("Check(%q) = %q, want it to name %q", tc.uri, err, tc.names)
		}
		if _, err := ClientOptions(tc.uri); !errors.As(err, &r) {
			t.Errorf("ClientOptions(%q) = %v, want a refusal", tc.uri, err)
		}
	}
}

func TestUnparsableURIsAreRefusedWithoutTheirText(t *testing.T) {
	for _, uri := range []string{
		"",
		"http://mongo/",
		"mongodb://user:s3cret@mongo:port/",
		"mongodb://user:s3cret@mongo/?w=0&journal=true",
		"mongodb://user:s3cret@mongo/?maxPoolSize=s3cret",
	} {
		err := Check(uri)
		if !errors.Is(err, ErrUnparsable) {
			t.Errorf("Check(%q) = %v, want ErrUnparsable", uri, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Check(%q) quotes the password: %v", uri, err)
		}
	}
}

func TestClientOptionsTakeCredentialsFromTheURIOnly(t *testing.T) {
	co, err := ClientOptions("mongodb://user:pass@127.0.0.1:1/app?authMechanism=SCRAM-SHA-256")
	if err != nil {
		t.Fatal(err)
	}
	if co.Auth == nil || co.Auth.Username != "user" || co.Auth.AuthMechanism != "SCRAM-SHA-256" || co.Auth.AuthMechanismProperties != nil {
		t.Errorf("auth = %+v", co.Auth)
	}
	if co.DisableOCSPEndpointCheck == nil || !*co.DisableOCSPEndpointCheck {
		t.Error("the driver may fetch OCSP responders that a tenant's certificate names")
	}
	co, err = ClientOptions("mongodb://127.0.0.1:1/")
	if err != nil {
		t.Fatal(err)
	}
	if co.Auth != nil {
		t.Errorf("a URI without credentials got auth %+v", co.Auth)
	}
}
