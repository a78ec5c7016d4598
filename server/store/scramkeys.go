package store

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	"net/http"
	"sync"

	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/auth"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

// SCRAMKeys keeps one tenant's MongoDB authenticator from one store client
// to the next, and with it the keys its SCRAM conversations derive from the
// password: PBKDF2 over 15,000 rounds of HMAC-SHA-256, 5.6 ms of CPU,
// which every new client pays again on its first connection. A pool
// closes an idle tenant's client and makes a new one on its next request,
// so the tenant keeps its SCRAMKeys (about 1.3 KiB of heap) across evictions
// (docs/pools.md, "Cold activation").
//
// It holds only its own tenant's authenticator, for that tenant's user,
// password and source: a client of other credentials gets a new one.
// Close it when the tenant goes.
type SCRAMKeys struct {
	id string

	mu                     sync.Mutex
	made                   driver.Authenticator
	user, password, source string
}

// NewSCRAMKeys makes an empty keeper; the first client fills it.
func NewSCRAMKeys() *SCRAMKeys {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	k := &SCRAMKeys{id: hex.EncodeToString(b)}
	keepers.Store(k.id, k)
	return k
}

// Close forgets the keys; clients made afterwards derive their own.
func (k *SCRAMKeys) Close() { keepers.Delete(k.id) }

// WithSCRAMKeys makes the store's client authenticate with k's kept
// authenticator, when its URI names no mechanism (the driver's default:
// SCRAM-SHA-256 in the handshake, as before).
func WithSCRAMKeys(k *SCRAMKeys) Option { return func(s *Store) { s.scramKeys = k } }

// The driver makes authenticators from a registry of factories by
// mechanism name, and a credential carries only strings: the client names
// keptMechanism and its keeper's id, which the factory looks up here.
const (
	keptMechanism = "USERVE-KEPT-DEFAULT"
	keptIDProp    = "USERVE_SCRAM_KEYS"
)

// keepers are the live SCRAMKeys by id. Each holds one tenant's own
// authenticator; the map only lets the driver's factory reach it.
var keepers sync.Map

func init() { auth.RegisterAuthenticatorFactory(keptMechanism, keptAuthenticator) }

// useSCRAMKeys points co's credential at k (Connect).
func useSCRAMKeys(co *options.ClientOptions, k *SCRAMKeys) {
	if k == nil || co.Auth == nil || co.Auth.AuthMechanism != "" || co.Auth.Username == "" {
		return
	}
	cred := *co.Auth
	cred.AuthMechanism = keptMechanism
	cred.AuthMechanismProperties = maps.Clone(cred.AuthMechanismProperties)
	if cred.AuthMechanismProperties == nil {
		cred.AuthMechanismProperties = map[string]string{}
	}
	cred.AuthMechanismProperties[keptIDProp] = k.id
	co.SetAuth(cred)
}

// keptAuthenticator is the keeper's authenticator for cred, made (the
// driver's default one) when it has none for these credentials.
func keptAuthenticator(cred *driver.Cred, hc *http.Client) (driver.Authenticator, error) {
	plain := *cred
	plain.Props = maps.Clone(cred.Props)
	delete(plain.Props, keptIDProp)
	v, ok := keepers.Load(cred.Props[keptIDProp])
	if !ok { // closed meanwhile
		return auth.CreateAuthenticator("", &plain, hc)
	}
	return v.(*SCRAMKeys).authenticator(&plain, hc)
}

// authenticator is the kept authenticator for cred, made when there is
// none for these credentials.
func (k *SCRAMKeys) authenticator(cred *driver.Cred, hc *http.Client) (driver.Authenticator, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.made == nil || k.user != cred.Username || k.password != cred.Password || k.source != cred.Source {
		a, err := auth.CreateAuthenticator("", cred, hc)
		if err != nil {
			return nil, err
		}
		k.made, k.user, k.password, k.source = a, cred.Username, cred.Password, cred.Source
	}
	return k.made, nil
}

// Prepare makes the authenticator for uri's credentials now, if it names
// no mechanism (the keys themselves are derived at the first conversation).
// A pool calls it when it learns a tenant's configuration: what a tenant
// keeps across evictions is then allocated beside its other long-lived
// state, not among an activation's short-lived objects, where it would
// keep their heap spans in use once they are freed (docs/bench.md).
func (k *SCRAMKeys) Prepare(uri string) {
	co := options.Client().ApplyURI(uri)
	if co.Validate() != nil || co.Auth == nil || co.Auth.AuthMechanism != "" || co.Auth.Username == "" {
		return
	}
	_, _ = k.authenticator(topology.ConvertCreds(co.Auth), nil)
}
