// Drives minapp-sdk's web build (lib/web.js, the package's "browser" entry)
// in Node against a userve tenant: xhr2 stands in for XMLHttpRequest and a
// Map for localStorage. Each step asserts what a MinApp app would see; the
// last line printed is a JSON summary the Go test checks against the store.
// Inputs (environment): SDK_MODULES (node_modules of the pinned SDK), HOST,
// CLIENT_ID, SINK (GET SINK?to=<phone or e-mail> answers the next code
// delivered there),
// PLUS_LOGIN and PLUS_PASSWORD (a user made through /api/v2).
'use strict';
const path = require('path');
const assert = require('assert');

const modules = process.env.SDK_MODULES;
global.window = global;
window.addEventListener = window.removeEventListener = () => {}; // no page events in Node
global.XMLHttpRequest = require(path.join(modules, 'xhr2'));
const items = new Map();
global.localStorage = {
  getItem: (k) => (items.has(k) ? items.get(k) : null),
  setItem: (k, v) => items.set(k, String(v)),
  removeItem: (k) => items.delete(k),
};
const BaaS = require(path.join(modules, 'minapp-sdk', 'lib', 'web.js'));
const host = process.env.HOST;

function token() {
  return JSON.parse(localStorage.getItem('ifx_baas_auth_token')).value;
}

// sunk is the code the tenant delivered to a phone or e-mail address.
async function sunk(to) {
  return (await fetch(process.env.SINK + '?to=' + encodeURIComponent(to))).text();
}

// refused runs fn and returns the HError it fails with.
async function refused(what, fn) {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error(what + ' succeeded, want an error');
}

async function main() {
  const out = {};

  // A wrong client ID is refused by the server (401), before anything else.
  BaaS.init('not-this-tenant', { host });
  let err = await refused('register with a wrong client ID', () =>
    BaaS.auth.register({ username: 'mallory', password: 'secret-123' }));
  assert.strictEqual(err.code, 401, 'wrong client ID: ' + err.message);
  assert.match(err.message, /client ID/);

  BaaS.init(process.env.CLIENT_ID, { host });

  // Register, then the current user as the SDK builds it.
  let user = await BaaS.auth.register({ username: 'alice_sdk', password: 'secret-123' });
  assert.strictEqual(user.get('_username'), 'alice_sdk');
  assert.strictEqual(user._anonymous, false);
  assert.ok(user.id > 0, 'user id');
  out.alice = user.id;

  // Taken names are the SDK's error 400 with the server's error_msg.
  err = await refused('registering a taken name', () =>
    BaaS.auth.register({ username: 'alice_sdk', password: 'secret-123' }));
  assert.strictEqual(err.code, 400);
  assert.match(err.message, /_username is already taken/);

  // Log out, then in again; a wrong password is a 401.
  await BaaS.auth.logout();
  err = await refused('getCurrentUser after logout', () => BaaS.auth.getCurrentUser());
  assert.strictEqual(err.code, 604);
  err = await refused('wrong password', () => BaaS.auth.login({ username: 'alice_sdk', password: 'wrong-pass' }));
  assert.strictEqual(err.code, 401);
  user = await BaaS.auth.login({ username: 'alice_sdk', password: 'secret-123' });
  assert.strictEqual(user.id, out.alice);

  // Custom and built-in fields through currentUser.set().update().
  user = await BaaS.auth.getCurrentUser();
  await user.set('age', 31).set('nickname', 'Alice').update();
  user = await BaaS.auth.getCurrentUser();
  assert.strictEqual(user.get('age'), 31);
  assert.strictEqual(user.nickname, 'Alice');
  err = await refused('writing openid', () => user.set('openid', 'forged').update());
  assert.strictEqual(err.code, 400);
  assert.match(err.message, /openid is a built-in field a user cannot change/);
  err = await refused('a wrong type', () => user.set('age', 'old').update());
  assert.strictEqual(err.code, 400);

  // Password change: the old password is required; the session ends.
  err = await refused('a wrong old password', () =>
    user.updatePassword({ password: 'wrong-pass', newPassword: 'secret-456' }));
  assert.strictEqual(err.code, 400);
  await user.updatePassword({ password: 'secret-123', newPassword: 'secret-456' });
  out.oldToken = token();
  err = await refused('the session after a password change', () => BaaS.auth.getCurrentUser());
  assert.strictEqual(err.code, 401);
  user = await BaaS.auth.login({ username: 'alice_sdk', password: 'secret-456' });
  assert.strictEqual(user.id, out.alice);

  // A user made through the end-user API logs in here with its password.
  await BaaS.auth.logout();
  user = await BaaS.auth.login({ username: process.env.PLUS_LOGIN, password: process.env.PLUS_PASSWORD });
  out.plusUser = user.id;
  await BaaS.auth.logout();

  // SMS: a code through the tenant's webhook, then login by code (a new,
  // verified user); a code works once.
  const phone = '13800000001';
  await BaaS.sendSmsCode({ phone });
  const code = await sunk(phone);
  user = await BaaS.auth.loginWithSmsVerificationCode(phone, code);
  assert.strictEqual(user.get('_phone'), phone);
  assert.strictEqual(user.get('_phone_verified'), true);
  out.smsUser = user.id;
  await BaaS.auth.logout();
  err = await refused('a used code', () => BaaS.auth.loginWithSmsVerificationCode(phone, code));
  assert.strictEqual(err.code, 400);

  // E-mail: a password-reset code, which the app's reset page spends on
  // /api/v2/user/retrieve-password; an e-mail verification code, which its
  // verification page sends back to the same SDK route.
  await BaaS.auth.register({ email: 'erin@example.com', password: 'secret-erin' });
  await BaaS.auth.logout();
  await BaaS.auth.requestPasswordReset({ email: 'erin@example.com' });
  let res = await fetch(host + '/api/v2/user/retrieve-password', {
    method: 'PUT', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ verifiable_type: 'mail', email: 'erin@example.com', verifiable_code: await sunk('erin@example.com'), password: 'secret-erin-2' }),
  });
  assert.strictEqual(res.status, 204, 'retrieve-password: ' + await res.text());
  user = await BaaS.auth.login({ email: 'erin@example.com', password: 'secret-erin-2' });
  assert.strictEqual(user.get('_email'), 'erin@example.com');
  user = await BaaS.auth.register({ email: 'fay@example.com', password: 'secret-fay' });
  assert.strictEqual(user.get('_email_verified'), false);
  await user.requestEmailVerification();
  res = await fetch(host + '/hserve/v2.0/user/email-verify/', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Hydrogen-Client-ID': process.env.CLIENT_ID, Authorization: 'Hydrogen-r1 ' + token() },
    body: JSON.stringify({ code: await sunk('fay@example.com') }),
  });
  assert.strictEqual(res.status, 200, 'email-verify with the code: ' + await res.text());
  user = await BaaS.auth.getCurrentUser();
  assert.strictEqual(user.get('_email_verified'), true);
  await BaaS.auth.logout();

  // Anonymous login: a user without an account.
  user = await BaaS.auth.anonymousLogin();
  assert.strictEqual(user._anonymous, true);
  assert.strictEqual(user.get('_username'), null);
  out.anonymous = user.id;
  out.anonymousToken = token();
  err = await refused('an anonymous user setting a name', () => user.setUsername('anon_name'));
  assert.strictEqual(err.code, 612);

  // Logout revokes the token (the Go test tries it afterwards).
  out.loggedOutToken = token();
  await BaaS.auth.logout();

  console.log(JSON.stringify(out));
}

main().catch((err) => {
  console.error('FAIL:', String(err), '\n', err && err.stack ? err.stack.split('\n').filter((l) => l.length < 300).join('\n') : '');
  process.exit(1);
});
