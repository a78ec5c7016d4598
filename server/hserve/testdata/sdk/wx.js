// Drives minapp-sdk's WeChat mini-program build (lib/index.js, the
// package's main entry) in Node. Each "app" is the SDK loaded in its own vm
// context with a small `wx` stand-in: wx.login asks the local fake WeChat
// (its /fake/login) for a code of a given openid, wx.request is HTTP
// (fetch), storage is a Map, and regenerator-runtime is there as WeChat's
// build tools inject it. Inputs (environment): SDK_MODULES, HOST,
// CLIENT_ID, WECHAT (the fake's URL), PARALLEL (apps logging in at once).
// The last line printed is a JSON summary for the Go test.
'use strict';
const fs = require('fs');
const path = require('path');
const vm = require('vm');
const assert = require('assert');

const modules = process.env.SDK_MODULES;
const file = path.join(modules, 'minapp-sdk', 'lib', 'index.js');
const regeneratorRuntime = require(path.join(modules, 'regenerator-runtime'));
const sdk = new vm.Script(fs.readFileSync(file, 'utf8'), { filename: file });

function newWx(openid, unionid) {
  const storage = new Map();
  return {
    login({ success, fail }) {
      fetch(process.env.WECHAT + '/fake/login', { method: 'POST', body: JSON.stringify({ openid, unionid }) })
        .then((r) => r.json())
        .then((j) => success({ code: j.code, errMsg: 'login:ok' }), fail);
    },
    request({ url, method = 'GET', data, header, success, fail }) {
      const init = { method, headers: header };
      if (method !== 'GET' && data !== undefined) {
        init.body = JSON.stringify(data);
        init.headers = Object.assign({ 'Content-Type': 'application/json' }, header);
      }
      fetch(url, init).then(async (r) => {
        const text = await r.text();
        let body = text;
        try { body = JSON.parse(text); } catch (e) { /* not JSON: as is */ }
        success({ data: body, statusCode: r.status, header: Object.fromEntries(r.headers), errMsg: 'request:ok' });
      }, (err) => fail({ errMsg: 'request:fail ' + err }));
    },
    getStorageSync: (k) => (storage.has(k) ? storage.get(k) : ''),
    setStorageSync: (k, v) => { storage.set(k, v); },
    getStorage({ key, success, fail }) {
      if (storage.has(key)) success({ data: storage.get(key) }); else fail({ errMsg: 'getStorage:fail data not found' });
    },
    setStorage({ key, data, success }) { storage.set(key, data); if (success) success({}); },
    getSystemInfoSync: () => ({ platform: 'ios', SDKVersion: '3.3.4' }),
    getSystemInfo({ success }) { success({ platform: 'ios', SDKVersion: '3.3.4' }); },
    getAccountInfoSync: () => ({ miniProgram: { appId: 'wx00000000000000aa', envVersion: 'develop', version: '' } }),
    getNetworkType({ success }) { success({ networkType: 'wifi' }); },
  };
}

// newApp is one mini-program instance: its own SDK, wx and storage.
function newApp(openid, unionid) {
  const sandbox = {
    wx: newWx(openid, unionid), console, setTimeout, clearTimeout, setInterval, clearInterval,
    regeneratorRuntime, // injected into mini-programs by WeChat's build tools
    module: { exports: {} },
  };
  sandbox.window = sandbox;
  sandbox.exports = sandbox.module.exports;
  vm.createContext(sandbox);
  sdk.runInContext(sandbox);
  const BaaS = sandbox.module.exports;
  BaaS.init(process.env.CLIENT_ID, { host: process.env.HOST });
  return BaaS;
}

async function main() {
  const out = {};
  const n = Number(process.env.PARALLEL);

  // n first logins of one WeChat user at once, from n app instances.
  const users = await Promise.all(Array.from({ length: n }, () => newApp('o-parallel', 'u-parallel').auth.loginWithWechat()));
  const ids = new Set(users.map((u) => u.id));
  assert.strictEqual(ids.size, 1, 'parallel first logins got users ' + [...ids].join(', '));
  assert.strictEqual(users[0].openid, 'o-parallel');
  out.parallelUser = users[0].id;

  // A later login finds the same user.
  const again = await newApp('o-parallel', 'u-parallel').auth.loginWithWechat();
  assert.strictEqual(again.id, out.parallelUser);

  // A user registered with a password links WeChat (linkWechat); the next
  // silent login of that WeChat account is that user.
  const app = newApp('o-carol', '');
  let carol = await app.auth.register({ username: 'carol_wx', password: 'secret-carol' });
  await carol.linkWechat();
  carol = await app.auth.getCurrentUser();
  assert.strictEqual(carol.openid, 'o-carol');
  out.carol = carol.id;
  const wx = await newApp('o-carol', '').auth.loginWithWechat();
  assert.strictEqual(wx.id, carol.id);

  // A getPhoneNumber button's event (base library 2.21.2+: detail.code)
  // logs in the number's user, a new one here, verified by WeChat.
  const phoneCode = (await (await fetch(process.env.WECHAT + '/fake/phonecode',
    { method: 'POST', body: JSON.stringify({ phone: '13500000001' }) })).json()).code;
  const phoneApp = newApp('o-dora', '');
  const loginCode = await new Promise((resolve, reject) => phoneApp._polyfill.wxLogin({ success: (r) => resolve(r.code), fail: reject }));
  const dora = await phoneApp.auth.loginWithWechat({ detail: { encryptedData: 'unused', iv: 'unused', code: phoneCode } }, { code: loginCode });
  assert.strictEqual(dora.get('_phone'), '13500000001');
  assert.strictEqual(dora.get('_phone_verified'), true);
  assert.strictEqual(dora.openid, 'o-dora');
  out.dora = dora.id;
  // The same WeChat account's silent login is that user.
  assert.strictEqual((await newApp('o-dora', '').auth.loginWithWechat()).id, dora.id);

  console.log(JSON.stringify(out));
}

main().catch((err) => {
  console.error('FAIL:', String(err), '\n', err && err.stack ? err.stack.split('\n').filter((l) => l.length < 300).join('\n') : '');
  process.exit(1);
});
