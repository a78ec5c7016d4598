package hserve

import "fmt"

// DevSnippet is five lines of Node that log in to a tenant at url through
// MinApp's own SDK (its web build; xhr2 and a Map stand in for the
// browser): `make dev` prints it for a developer to paste.
func DevSnippet(url, clientID string) string {
	return fmt.Sprintf(`    MinApp SDK:   npm i minapp-sdk@3.23.6 xhr2 && node   (then paste:)
      global.window = global; window.addEventListener = () => {}; global.XMLHttpRequest = require('xhr2');
      const kv = new Map(); global.localStorage = { getItem: (k) => kv.get(k) ?? null, setItem: (k, v) => kv.set(k, String(v)) };
      const BaaS = require('minapp-sdk/lib/web.js'); BaaS.init('%s', { host: '%s' });
      BaaS.auth.register({ username: 'dev_user', password: 'dev-password' }).catch(() => BaaS.auth.login({ username: 'dev_user', password: 'dev-password' }))
        .then((user) => console.log('logged in as user', user.id, user.get('_username')), (err) => console.log(err.message));
`, clientID, url)
}
