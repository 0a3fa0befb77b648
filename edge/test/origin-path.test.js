'use strict';
// The router in origin-path mode: the distribution's origin path names the active version, and an
// override reaches its version by changing the origin path at origin-request, where the
// static-host semantics apply too.

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

const FILES = ['index.html', 'about/index.html', '404.html', 'CNAME', 'a b.js'];

test.before(() => {
  router.configure({ mode: 'origin-path', notFound: 'auto', overrideSecret: undefined });
  router.setParameterReader(async () => {
    throw new Error('origin-path mode never reads SSM');
  });
  router.setIndexReader(async (version) => (['40', '41', 'v2.0.0'].includes(version) ? FILES : null));
  router.setPageReader(async (version) => `gone ${version}`);
});
test.after(() => router.configure({ mode: 'ssm' }));

test('viewer-request leaves every decision to origin-request, a bad path too', async () => {
  assert.equal((await router.handler(event('viewer-request', { uri: '/about/team' }))).uri, '/about/team');
  assert.equal((await router.handler(event('viewer-request', { uri: '/../x.txt' }))).uri, '/../x.txt');
  const bad = await router.handler(event('origin-request', { uri: '/100%.txt', query: 'override_build_number=CLEAR' }));
  assert.equal(bad.status, '400');
  assert.deepEqual(bad.headers['x-cutover-version'], [{ key: 'x-cutover-version', value: '41' }]);
  assert.deepEqual(
    bad.headers['set-cookie'].map((h) => h.value),
    ['Build-Number=; Path=/; Max-Age=0', 'Override=; Path=/; Max-Age=0'],
  );
});

test('origin-request applies static-host semantics under the origin path', async () => {
  assert.equal((await router.handler(event('origin-request', { uri: '/about/' }))).uri, '/about/index.html');
  assert.equal((await router.handler(event('origin-request', { uri: '/CNAME' }))).uri, '/CNAME');
  assert.equal((await router.handler(event('origin-request', { uri: '/a%20b.js' }))).uri, '/a%20b.js');
  assert.equal((await router.handler(event('origin-request', { uri: '/nope' }))).uri, '/404.html');
  const redirect = await router.handler(event('origin-request', { uri: '/about', query: 'x=1' }));
  assert.equal(redirect.status, '301');
  assert.deepEqual(redirect.headers.location, [{ key: 'Location', value: '/about/?x=1' }]);
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
  const unknown = await router.handler(event('origin-request', { query: 'override_build_number=77' }));
  assert.equal(unknown.origin.s3.path, '/site/41');
});

test('origin-response names the version its origin path served and gives 404.html its status', async () => {
  const response = () => ({ status: '200', statusDescription: 'OK', headers: {} });
  const named = await router.handler(event('origin-response', { originPath: '/site/40', response: response() }));
  assert.deepEqual(named.headers['x-cutover-version'], [{ key: 'x-cutover-version', value: '40' }]);
  assert.equal(named.status, '200');
  const missing = await router.handler(event('origin-response', { uri: '/404.html', response: response() }));
  assert.equal(missing.status, '404');
});

test('viewer-response sets cookies only for an honoured override query', async () => {
  const response = (version) => ({
    status: '200',
    statusDescription: 'OK',
    headers: { 'x-cutover-version': [{ key: 'x-cutover-version', value: version }] },
  });
  const previewed = await router.handler(event('viewer-response', { query: 'override_build_number=40', response: response('40') }));
  assert.deepEqual(
    previewed.headers['set-cookie'].map((h) => h.value),
    ['Build-Number=40; Path=/; SameSite=Lax', 'Override=true; Path=/; SameSite=Lax'],
  );
  assert.deepEqual(previewed.headers['cache-control'], [{ key: 'cache-control', value: 'private, no-cache' }]);
  const pinned = await router.handler(event('viewer-response', { cookie: 'Build-Number=40; Override=true', response: response('40') }));
  assert.equal(pinned.headers['set-cookie'], undefined);
  const unknown = await router.handler(event('viewer-response', { query: 'override_build_number=77', response: response('41') }));
  assert.equal(unknown.headers['set-cookie'], undefined);
  assert.deepEqual(unknown.headers['x-cutover-override'], [{ key: 'x-cutover-override', value: 'unknown-version' }]);
});

test('origin-request answers a 404 that sets cookies or says why itself, and sends the origin no range for the 404 page', async () => {
  const cleared = await router.handler(event('origin-request', { uri: '/nope', query: 'override_build_number=clear' }));
  assert.equal(cleared.status, '404');
  assert.equal(cleared.body, 'gone 41');
  assert.equal(cleared.headers['set-cookie'].length, 2);
  const pinned = await router.handler(event('origin-request', { uri: '/nope', cookie: 'Build-Number=40; Override=true' }));
  assert.equal(pinned.status, '404');
  assert.equal(pinned.body, 'gone 40');
  const ranged = event('origin-request', { uri: '/nope' });
  ranged.Records[0].cf.request.headers.range = [{ key: 'Range', value: 'bytes=0-3' }];
  const plain = await router.handler(ranged);
  assert.equal(plain.uri, '/404.html');
  assert.equal(plain.headers.range, undefined);
});
