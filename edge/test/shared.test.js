'use strict';
// The shared pool in the router: the `shared-assets` vectors (also run by the Rust tests against
// the default rule), pooled files and other releases' fingerprinted paths served from
// /<prefix>/_shared/ in both pointer styles, and everything else left to the release.

const test = require('node:test');
const assert = require('node:assert/strict');

const router = require('../router.js');
const vectors = require('../shared-assets.json');
const config = require('../config.json');

const FILES = { files: ['index.html', 'assets/index-BxK3a9Qz.js', 'assets/logo.png'], pooled: ['assets/index-BxK3a9Qz.js'] };

function event(eventType, uri, { originPath = '/site/41', cookie = null } = {}) {
  const headers = cookie === null ? {} : { cookie: [{ key: 'Cookie', value: cookie }] };
  const request = { clientIp: '203.0.113.178', method: 'GET', uri, querystring: '', headers };
  request.origin = { s3: { domainName: 'site-bucket.s3.amazonaws.com', path: originPath, customHeaders: {} } };
  return { Records: [{ cf: { config: { distributionId: 'EDFDVBD6EXAMPLE', eventType }, request } }] };
}

function setUp(mode) {
  router.configure({ mode, notFound: 'auto', overrideSecret: undefined, sharedAssets: vectors.pattern, prefix: 'site' });
  router.setParameterReader(async () => '41');
  router.setIndexReader(async (version) => (['40', '41'].includes(version) ? FILES : null));
}

test('the baked default is the rule the vectors were made from', () => {
  assert.equal(config.sharedAssets, vectors.pattern);
});

for (const path of vectors.shared) {
  test(`shared: ${path}`, async () => {
    setUp('ssm');
    const request = await router.handler(event('viewer-request', `/${encodeURI(path)}`));
    assert.equal(decodeURI(request.uri), `/site/_shared/${path}`);
  });
}

for (const path of vectors.not_shared) {
  test(`not shared: ${path}`, async () => {
    setUp('ssm');
    const decision = await router.decide({ uri: `/${encodeURI(path)}`, querystring: '', headers: {} }, async () => '41');
    assert.equal(decision.outcome.pooled ?? false, false);
  });
}

test('ssm style: a pooled file names the version that chose it, and an unpooled one stays in its release', async () => {
  setUp('ssm');
  const request = await router.handler(event('viewer-request', '/assets/index-BxK3a9Qz.js'));
  assert.equal(request.uri, '/site/_shared/assets/index-BxK3a9Qz.js');
  const origin = { status: '200', statusDescription: 'OK', headers: {} };
  const response = await router.handler({ Records: [{ cf: { config: { eventType: 'viewer-response' }, request, response: origin } }] });
  assert.deepEqual(response.headers['x-cutover-version'], [{ key: 'x-cutover-version', value: '41' }]);
  assert.equal((await router.handler(event('viewer-request', '/assets/logo.png'))).uri, '/site/41/assets/logo.png');
});

test('a file the release stores in its own directory is served from there, whatever the rule says', async () => {
  setUp('ssm');
  router.setIndexReader(async () => ({ files: ['assets/index-BxK3a9Qz.js'], pooled: [] }));
  assert.equal((await router.handler(event('viewer-request', '/assets/index-BxK3a9Qz.js'))).uri, '/site/41/assets/index-BxK3a9Qz.js');
});

test('origin-path style: another release\'s chunk comes from the pool; a missing one is a 404, not 403', async () => {
  setUp('origin-path');
  const request = await router.handler(event('origin-request', '/assets/old-AbCd1234.js'));
  assert.equal(request.origin.s3.path, '/site/_shared');
  assert.equal(request.uri, '/assets/old-AbCd1234.js');
  const denied = { status: '403', statusDescription: 'Forbidden', headers: {} };
  const response = await router.handler({ Records: [{ cf: { config: { eventType: 'origin-response' }, request, response: denied } }] });
  assert.equal(response.status, '404');
});

test('sharing off: a fingerprinted path the release lacks is not found', async () => {
  setUp('ssm');
  router.configure({ sharedAssets: undefined });
  const decision = await router.decide({ uri: '/assets/old-AbCd1234.js', querystring: '', headers: {} }, async () => '41');
  assert.equal(decision.outcome.file, undefined);
});

test('a chunk the release lacks asked with an override or clear gets the release\'s own 404 with the cookies', async () => {
  setUp('ssm');
  router.setIndexReader(async (version) => (['40', '41'].includes(version) ? { ...FILES, files: [...FILES.files, '404.html'] } : null));
  router.setPageReader(async (version) => `gone ${version}`);
  for (const [querystring, cookie] of [['override_build_number=clear', null], ['override_build_number=40', null], ['', 'Build-Number=40; Override=true']]) {
    const request = event('viewer-request', '/assets/missing-ABCDEFGH.js', { cookie });
    request.Records[0].cf.request.querystring = querystring;
    const answer = await router.handler(request);
    assert.equal(answer.status, '404', querystring);
    assert.match(answer.body, /^gone 4[01]$/);
    assert.equal(answer.headers['cache-control'][0].value, 'private, no-cache', querystring);
  }
  const plain = await router.handler(event('viewer-request', '/assets/missing-ABCDEFGH.js'));
  assert.equal(plain.uri, '/site/_shared/assets/missing-ABCDEFGH.js', 'without extras the pool answers');
});

test('origin-path style: a pinned pooled file names its version, so the pin is honoured', async () => {
  setUp('origin-path');
  const pin = 'Build-Number=40; Override=true';
  const request = await router.handler(event('origin-request', '/assets/index-BxK3a9Qz.js', { cookie: pin }));
  assert.equal(request.origin.s3.path, '/site/_shared');
  const ok = { status: '200', statusDescription: 'OK', headers: {} };
  const origin = await router.handler({ Records: [{ cf: { config: { eventType: 'origin-response' }, request, response: ok } }] });
  const viewer = event('viewer-response', '/assets/index-BxK3a9Qz.js', { cookie: pin }).Records[0].cf.request;
  const response = await router.handler({ Records: [{ cf: { config: { eventType: 'viewer-response' }, request: viewer, response: origin } }] });
  assert.equal(response.headers['x-cutover-version'][0].value, '40');
  assert.equal(response.headers['x-cutover-override'], undefined);
  assert.equal(response.headers['x-robots-tag'][0].value, 'noindex');
  assert.equal(response.headers['cache-control'][0].value, 'private, no-cache');
});

test('a pool miss for a path no index lists drops no index: 1,000 of them, pinned or not, cost no read, and a pin by cookie still holds', async (t) => {
  t.mock.method(console, 'warn', () => {});
  // One second that does not pass, so the cap on values never seen would bite re-reads.
  t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
  setUp('ssm');
  const reads = [];
  router.setIndexReader(async (version) => {
    reads.push(version);
    return ['3', '4'].includes(version) ? FILES : null;
  });
  router.setParameterReader(async () => '4');
  const denied = () => ({ status: '403', statusDescription: 'Forbidden', headers: { 'content-type': [{ key: 'Content-Type', value: 'application/xml' }] }, body: '<Error><Code>AccessDenied</Code></Error>' });
  for (let i = 0; i < 1000; i += 1) {
    const request = event('viewer-request', `/assets/r${i}-AAAAAAAA.js`);
    request.Records[0].cf.request.querystring = i % 2 === 0 ? 'dpl=3' : '';
    const decided = await router.handler(request);
    assert.equal(decided.uri, `/site/_shared/assets/r${i}-AAAAAAAA.js`);
    const answer = await router.handler({ Records: [{ cf: { config: { eventType: 'origin-response' }, request: decided, response: denied() } }] });
    assert.equal(answer.status, '404');
  }
  assert.deepEqual(reads.sort(), ['3', '4'], 'each index read once');
  const cookie = 'Build-Number=3; Override=true';
  const pinned = await router.handler(event('viewer-request', '/index.html', { cookie }));
  assert.equal(pinned.uri, '/site/3/index.html', 'the pinned release is still served');
});

test('a missing pooled object is a plain 404 that no cache keeps: not S3\'s error, no-store, the asking version', async () => {
  for (const mode of ['ssm', 'origin-path']) {
    setUp(mode);
    const handler = mode === 'ssm' ? 'viewer-request' : 'origin-request';
    const request = await router.handler(event(handler, '/assets/old-AbCd1234.js'));
    const denied = { status: '403', statusDescription: 'Forbidden', headers: { 'content-type': [{ key: 'Content-Type', value: 'application/xml' }] }, body: '<Error><Code>AccessDenied</Code></Error>' };
    const answer = await router.handler({ Records: [{ cf: { config: { eventType: 'origin-response' }, request, response: denied } }] });
    assert.equal(answer.status, '404', mode);
    assert.equal(answer.body, 'not found\n', mode);
    assert.equal(answer.headers['content-type'][0].value, 'text/plain; charset=utf-8', mode);
    assert.equal(answer.headers['cache-control'][0].value, 'no-store', mode);
    assert.equal(answer.headers['x-cutover-version'][0].value, '41', mode);
  }
});

test.after(() => router.configure({ mode: 'ssm', sharedAssets: config.sharedAssets }));
