// Package mongouri is the one policy for MongoDB URIs that a tenant supplies
// (spec.mongo.uriSecretRef, and whatever reaches a tenant server as
// USERVE_MONGO_URI): which of them may be dialed at all, and the client
// options they are dialed with.
//
// The MongoDB driver honours whatever a URI asks for. Some mechanisms make it
// read the dialing process's identity and send it to the URI's host
// (MONGODB-OIDC's ENVIRONMENT:k8s|azure|gcp sends the pod's service-account
// or cloud token, MONGODB-AWS signs with the node's AWS identity), tls*File
// options read local files. A URI that lets the driver do any of that is
// refused before anything is dialed or resolved. The policy is an allow-list
// over the driver's own parse (connstring), so that an option the driver
// learns in a later version is refused until it is judged here.
package mongouri

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/mongo/address"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
)

// Allowed authentication mechanisms: none (no credentials in the URI) or
// SCRAM, whose only secret is the password written in the URI itself.
var allowedMechanisms = []string{"", "SCRAM-SHA-256", "SCRAM-SHA-1"}

// allowedOptions are the URI options a tenant may set, by the driver's
// lower-case key, with the spelling messages use. Each only tunes how the
// driver talks to the hosts the URI names; none reads local state.
var allowedOptions = map[string]string{
	"appname":                  "appName",
	"authmechanism":            "authMechanism", // its value is judged on its own
	"authsource":               "authSource",
	"compressors":              "compressors",
	"connect":                  "connect",
	"connecttimeoutms":         "connectTimeoutMS",
	"directconnection":         "directConnection",
	"heartbeatfrequencyms":     "heartbeatFrequencyMS",
	"heartbeatintervalms":      "heartbeatIntervalMS",
	"journal":                  "journal",
	"loadbalanced":             "loadBalanced",
	"localthresholdms":         "localThresholdMS",
	"maxconnecting":            "maxConnecting",
	"maxidletimems":            "maxIdleTimeMS",
	"maxpoolsize":              "maxPoolSize",
	"maxstaleness":             "maxStaleness",
	"maxstalenessseconds":      "maxStalenessSeconds",
	"minpoolsize":              "minPoolSize",
	"readconcernlevel":         "readConcernLevel",
	"readpreference":           "readPreference",
	"readpreferencetags":       "readPreferenceTags",
	"replicaset":               "replicaSet",
	"retryreads":               "retryReads",
	"retrywrites":              "retryWrites",
	"servermonitoringmode":     "serverMonitoringMode",
	"serverselectiontimeoutms": "serverSelectionTimeoutMS",
	"sockettimeoutms":          "socketTimeoutMS",
	"srvmaxhosts":              "srvMaxHosts",
	"srvservicename":           "srvServiceName",
	"ssl":                      "ssl",
	"timeoutms":                "timeoutMS",
	"tls":                      "tls",
	"w":                        "w",
	"zlibcompressionlevel":     "zlibCompressionLevel",
	"zstdcompressionlevel":     "zstdCompressionLevel",
}

// refusedOptions say why the options a tenant might expect to work are
// refused; any other option outside allowedOptions is refused as unknown.
var refusedOptions = map[string]struct{ name, why string }{
	"authmechanismproperties":              {"authMechanismProperties", "it tells the driver where to fetch credentials from (the pod's service-account token, cloud identity endpoints)"},
	"tlscafile":                            {"tlsCAFile", "it makes the driver read a local file"},
	"sslcertificateauthorityfile":          {"sslCertificateAuthorityFile", "it makes the driver read a local file"},
	"tlscertificatekeyfile":                {"tlsCertificateKeyFile", "it makes the driver read a local file"},
	"sslclientcertificatekeyfile":          {"sslClientCertificateKeyFile", "it makes the driver read a local file"},
	"tlscertificatekeyfilepassword":        {"tlsCertificateKeyFilePassword", "it belongs to a local key file"},
	"sslclientcertificatekeypassword":      {"sslClientCertificateKeyPassword", "it belongs to a local key file"},
	"tlscertificatefile":                   {"tlsCertificateFile", "it makes the driver read a local file"},
	"tlsprivatekeyfile":                    {"tlsPrivateKeyFile", "it makes the driver read a local file"},
	"tlsinsecure":                          {"tlsInsecure", "it turns off certificate checks"},
	"sslinsecure":                          {"sslInsecure", "it turns off certificate checks"},
	"tlsallowinvalidcertificates":          {"tlsAllowInvalidCertificates", "it turns off certificate checks"},
	"tlsallowinvalidhostnames":             {"tlsAllowInvalidHostnames", "it turns off certificate checks"},
	"tlsdisableocspendpointcheck":          {"tlsDisableOCSPEndpointCheck", "revocation checks are the dialer's choice"},
	"tlsdisablecertificaterevocationcheck": {"tlsDisableCertificateRevocationCheck", "it turns off revocation checks"},
	"proxyhost":                            {"proxyHost", "the dialer's network path is not the tenant's to choose"},
	"proxyport":                            {"proxyPort", "the dialer's network path is not the tenant's to choose"},
	"proxyusername":                        {"proxyUsername", "the dialer's network path is not the tenant's to choose"},
	"proxypassword":                        {"proxyPassword", "the dialer's network path is not the tenant's to choose"},
}

// ErrUnparsable: the URI is not one the driver can parse. Its message never
// quotes the URI, which may hold a password.
var ErrUnparsable = errors.New("the MongoDB URI does not parse: want mongodb://[user:password@]host[:port][,...]/[database][?options] or mongodb+srv://")

// ErrUnresolved: a URI the policy allows could not be turned into client
// options, e.g. its mongodb+srv name does not resolve. It wraps the driver's
// error, for logs only.
var ErrUnresolved = errors.New("the MongoDB URI could not be resolved")

// RefusedError names what a URI asks for that the policy refuses.
type RefusedError struct {
	// Option is the URI option (or "authMechanism=VALUE", or "host") refused.
	Option string
	// Why it is refused.
	Why string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("the MongoDB URI's %s is refused: %s; a tenant's URI may use no authentication or SCRAM (SCRAM-SHA-256, SCRAM-SHA-1) and no option that reads local files or credentials", e.Option, e.Why)
}

// Check applies the policy to uri, from its text alone: it returns
// ErrUnparsable or a *RefusedError, and never touches the network (a
// mongodb+srv URI is judged as written, before any SRV or TXT lookup; the
// options a TXT record may add are limited by the driver to authSource,
// replicaSet and loadBalanced).
func Check(uri string) error {
	text := uri
	if rest, ok := strings.CutPrefix(uri, connstring.SchemeMongoDBSRV+"://"); ok {
		// The driver resolves mongodb+srv hosts while parsing: parse the
		// same text as mongodb://, which it does not resolve.
		text = connstring.SchemeMongoDB + "://" + rest
	}
	cs, err := connstring.Parse(text)
	if err != nil {
		// The driver refuses some mechanisms while parsing; name them
		// rather than saying only that the URI does not parse.
		if r := refusedInQuery(text); r != nil {
			return r
		}
		return ErrUnparsable
	}
	if err := judge(cs); err != nil {
		return err
	}
	if err := cs.Validate(); err != nil {
		return ErrUnparsable
	}
	return nil
}

// refusedInQuery is the policy's refusal of an option in a URI the driver
// could not parse, for the message only: the driver's refusal stands anyway.
func refusedInQuery(uri string) *RefusedError {
	_, query, ok := strings.Cut(uri, "?")
	if !ok {
		return nil
	}
	values, err := url.ParseQuery(query)
	if err != nil {
		return nil
	}
	opts := map[string][]string{}
	for k, v := range values {
		opts[strings.ToLower(k)] = v
	}
	var mech string
	if m := opts["authmechanism"]; len(m) > 0 {
		mech = m[len(m)-1]
	}
	var r *RefusedError
	if errors.As(judge(&connstring.ConnString{Options: opts, AuthMechanism: mech}), &r) {
		return r
	}
	return nil
}

// judge is the policy over one parse.
func judge(cs *connstring.ConnString) error {
	if !slices.ContainsFunc(allowedMechanisms, func(m string) bool { return strings.EqualFold(m, cs.AuthMechanism) }) {
		return &RefusedError{Option: "authMechanism=" + shown(cs.AuthMechanism),
			Why: "only SCRAM-SHA-256 and SCRAM-SHA-1 (or no authentication) are allowed: other mechanisms make the driver fetch or read an identity of the machine that dials"}
	}
	keys := make([]string, 0, len(cs.Options))
	for k := range cs.Options {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if _, ok := allowedOptions[k]; ok {
			continue
		}
		if r, ok := refusedOptions[k]; ok {
			return &RefusedError{Option: "option " + r.name, Why: r.why}
		}
		return &RefusedError{Option: "option " + shown(k), Why: "it is not an option userve lets a tenant's URI set"}
	}
	if cs.AuthMechanismPropertiesSet || len(cs.AuthMechanismProperties) > 0 {
		r := refusedOptions["authmechanismproperties"]
		return &RefusedError{Option: "option " + r.name, Why: r.why}
	}
	for _, h := range cs.Hosts {
		// The driver dials a host ending in "sock" as a Unix socket: a
		// file of the dialing machine.
		if address.Address(h).Network() != "tcp" {
			return &RefusedError{Option: "host " + shown(h), Why: "a Unix socket is a local file"}
		}
	}
	return nil
}

// ClientOptions are the driver options to dial uri with, or the policy's
// refusal. Beyond the URI's own settings: credentials only ever come from the
// URI (a mechanism that could reach for the environment is impossible past
// the policy, and checked again on the built options), and the driver makes
// no OCSP request to a responder that the server's certificate names, so that
// a tenant's certificate cannot make the dialer fetch an address of its
// choosing.
func ClientOptions(uri string) (*options.ClientOptions, error) {
	if err := Check(uri); err != nil {
		return nil, err
	}
	// ApplyURI parses again, resolving a mongodb+srv URI (TXT options
	// included), and reads no file past Check.
	co := options.Client().ApplyURI(uri)
	if err := co.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnresolved, err)
	}
	if err := checkBuilt(co); err != nil {
		return nil, err
	}
	co.SetDisableOCSPEndpointCheck(true)
	return co, nil
}

// checkBuilt re-checks what ApplyURI produced, in case the driver derives
// more from a URI than its parse shows.
func checkBuilt(co *options.ClientOptions) error {
	if a := co.Auth; a != nil {
		if !slices.ContainsFunc(allowedMechanisms, func(m string) bool { return strings.EqualFold(m, a.AuthMechanism) }) {
			return &RefusedError{Option: "authMechanism=" + shown(a.AuthMechanism), Why: "not SCRAM"}
		}
		if len(a.AuthMechanismProperties) > 0 || a.OIDCMachineCallback != nil || a.OIDCHumanCallback != nil {
			return &RefusedError{Option: "option authMechanismProperties", Why: refusedOptions["authmechanismproperties"].why}
		}
	}
	if t := co.TLSConfig; t != nil && (t.InsecureSkipVerify || len(t.Certificates) > 0 || t.GetClientCertificate != nil) {
		return &RefusedError{Option: "TLS settings", Why: "client certificates and skipped verification are not a tenant's to set"}
	}
	return nil
}

// shown is a tenant's text fit for a condition message: bounded, and
// printable.
func shown(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "..."
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
