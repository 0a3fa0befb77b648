'use strict';
// The router in origin-path mode: the distribution's origin path names the active version, and an
// override reaches its version by changing the origin path at origin-request.

const test = require('node:test');
const assert = require('node:assert/strict');

const router = require('../router.js');

function event(eventType, { uri = '/', query = '', cookie = null, originPath = '/site/41', response = null } = {}) {
  const headers = {};
  if (cookie !== null) {
    headers.cookie = [{ key: 'Cookie', value: cookie }];
  }
  const request = {
    clientIp: '203.0.113.178',
    method: 'GET',
    uri,
    querystring: query,
    headers,
    origin: { s3: { domainName: 'site-bucket.s3.amazonaws.com', path: originPath, authMethod: 'origin-access-identity', customHeaders: {} } },
  };
  const cf = { config: { distributionId: 'EDFDVBD6EXAMPLE', eventType }, request };
  if (response) {
    cf.response = response;
  }
  return { Records: [{ cf }] };
}

test.before(() => {
  router.configure({ mode: 'origin-path' });
  router.setParameterReader(async () => {
    throw new Error('origin-path mode never reads SSM');
  });
});
test.after(() => router.configure({ mode: 'ssm' }));

test('viewer-request applies only the SPA fallback', async () => {
  assert.equal((await router.handler(event('viewer-request', { uri: '/about/team' }))).uri, '/index.html');
  assert.equal((await router.handler(event('viewer-request', { uri: '/a%20b.js' }))).uri, '/a%20b.js');
  assert.equal((await router.handler(event('viewer-request', { uri: '/../x.txt' }))).status, '400');
});

test('origin-request points an override at its version and leaves the rest alone', async () => {
  const pinned = await router.handler(event('origin-request', { cookie: 'Build-Number=40; Override=true' }));
  assert.equal(pinned.origin.s3.path, '/site/40');
  const previewed = await router.handler(event('origin-request', { query: 'override_build_number=v2.0.0' }));
  assert.equal(previewed.origin.s3.path, '/site/v2.0.0');
  const plain = await router.handler(event('origin-request'));
  assert.equal(plain.origin.s3.path, '/site/41');
  const hostile = await router.handler(event('origin-request', { query: 'override_build_number=..%2F..' }));
  assert.equal(hostile.origin.s3.path, '/site/41');
});

test('origin-response names the version its origin path served', async () => {
  const response = { status: '200', statusDescription: 'OK', headers: {} };
  const named = await router.handler(event('origin-response', { originPath: '/site/40', response }));
  assert.deepEqual(named.headers['x-cutover-version'], [{ key: 'x-cutover-version', value: '40' }]);
});

test('viewer-response sets cookies only for the override query', async () => {
  const response = () => ({ status: '200', statusDescription: 'OK', headers: {} });
  const previewed = await router.handler(event('viewer-response', { query: 'override_build_number=40', response: response() }));
  assert.deepEqual(
    previewed.headers['set-cookie'].map((h) => h.value),
    ['Build-Number=40; Path=/; SameSite=Lax', 'Override=true; Path=/; SameSite=Lax'],
  );
  const pinned = await router.handler(event('viewer-response', { cookie: 'Build-Number=40; Override=true', response: response() }));
  assert.equal(pinned.headers['set-cookie'], undefined);
});
