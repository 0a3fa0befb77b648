'use strict';
// Preview aliases at the router: `?override_build_number=pr-<n>` and its cookie, and the host
// `pr-<n>.<previewDomain>`, serve the pull request's newest preview with `X-Robots-Tag: noindex`;
// the alias is cached like the active version; hostile hosts never reach a path.

const test = require('node:test');
const assert = require('node:assert/strict');

const router = require('../router.js');
const { startMoto } = require('./moto.js');

function event(uri, querystring, headers, eventType = 'viewer-request') {
  const request = { clientIp: '203.0.113.178', method: 'GET', uri, querystring, headers };
  return { Records: [{ cf: { config: { distributionId: 'EDFDVBD6EXAMPLE', eventType }, request } }] };
}

const host = (value) => ({ host: [{ key: 'Host', value }] });

/** Releases 1 (live), pr-7-11 and pr-7-12; the alias pr-7 names `target.version`. */
function setUp(target, options = {}) {
  router.configure({ mode: 'ssm', notFound: 'auto', overrideSecret: undefined, cacheSeconds: 5, previewDomain: 'preview.example.com', ...options });
  router.setParameterReader(async () => '1');
  router.setIndexReader(async (version) => (['1', 'pr-7-11', 'pr-7-12'].includes(version) ? ['index.html'] : null));
  const reads = [];
  router.setAliasReader(async (alias) => {
    reads.push(alias);
    return alias === 'pr-7' ? target.version : null;
  });
  return reads;
}

/** viewer-request then viewer-response, as a cache hit runs them: { uri, headers } or a generated answer. */
async function through(uri, querystring, headers) {
  const request = await router.handler(event(uri, querystring, headers));
  if (request.status !== undefined) return { uri: null, headers: request.headers };
  const response = { status: '200', statusDescription: 'OK', headers: {} };
  const viewer = { Records: [{ cf: { config: { eventType: 'viewer-response' }, request, response } }] };
  const out = await router.handler(viewer);
  return { uri: request.uri, headers: out.headers };
}

const value = (headers, name) => ((headers[name] || [])[0] || {}).value ?? null;

test('the alias link and its cookie serve the newest preview, and follow the alias', async () => {
  const target = { version: 'pr-7-11' };
  setUp(target);
  let got = await through('/', 'override_build_number=pr-7', host('d111.cloudfront.net'));
  assert.equal(got.uri, '/site/pr-7-11/index.html');
  assert.equal(value(got.headers, 'x-cutover-version'), 'pr-7-11');
  assert.equal(value(got.headers, 'x-robots-tag'), 'noindex');
  assert.deepEqual(got.headers['set-cookie'].map((c) => c.value), ['Build-Number=pr-7; Path=/; SameSite=Lax', 'Override=true; Path=/; SameSite=Lax']);
  target.version = 'pr-7-12';
  router.configure({});
  got = await through('/', '', { ...host('d111.cloudfront.net'), cookie: [{ key: 'Cookie', value: 'Build-Number=pr-7; Override=true' }] });
  assert.equal(got.uri, '/site/pr-7-12/index.html', 'the cookie keeps the alias');
  assert.equal(value(got.headers, 'x-cutover-override'), null);
  got = await through('/', 'override_build_number=pr-7-11', host('d111.cloudfront.net'));
  assert.equal(got.uri, '/site/pr-7-11/index.html', 'an older preview stays reachable by its version');
});

test('viewer-response keeps the preview viewer-request resolved, even if the alias moved between them', async () => {
  const target = { version: 'pr-7-11' };
  setUp(target);
  const request = await router.handler(event('/', 'override_build_number=pr-7', host('d111.cloudfront.net')));
  assert.equal(request.uri, '/site/pr-7-11/index.html');
  target.version = 'pr-7-12';
  router.configure({});
  const response = { status: '200', statusDescription: 'OK', headers: {} };
  const viewer = { Records: [{ cf: { config: { eventType: 'viewer-response' }, request, response } }] };
  const out = await router.handler(viewer);
  assert.equal(value(out.headers, 'x-cutover-override'), null);
  assert.equal(value(out.headers, 'x-cutover-version'), 'pr-7-11');
  assert.equal(value(out.headers, 'x-robots-tag'), 'noindex');
  assert.equal(value(out.headers, 'cache-control'), 'private, no-cache');
  assert.equal(out.headers['set-cookie'].length, 2);
});

test('the clear link on a preview host clears the cookies and shows nothing, in any case, with or without a secret', async () => {
  for (const options of [{}, { overrideSecret: 's3cret' }]) {
    setUp({ version: 'pr-7-11' }, options);
    for (const [query, at] of [['override_build_number=clear', 'pr-7.preview.example.com'], ['override_build_number=%43lEaR', 'www.Preview.example.com.']]) {
      const answer = await router.handler(event('/', query, host(at)));
      assert.equal(answer.status, '404', `${query} at ${at}`);
      assert.equal(answer.body, 'preview cookies cleared: a preview host shows only previews, never the live site\n');
      assert.deepEqual(answer.headers['set-cookie'].map((c) => c.value.split(';')[0]), ['Build-Number=', 'Override=']);
      assert.equal(value(answer.headers, 'x-robots-tag'), 'noindex');
      assert.equal(value(answer.headers, 'cache-control'), 'no-store');
    }
  }
  const live = await through('/', 'override_build_number=clear', host('d111.cloudfront.net'));
  assert.equal(live.uri, '/site/1/index.html', 'elsewhere the clear link shows the live site');
});

test('aliases are read once per cacheSeconds, a bounded number kept', async () => {
  const reads = setUp({ version: 'pr-7-11' });
  for (let i = 0; i < 5; i += 1) await through('/', 'override_build_number=pr-7', host('d111.cloudfront.net'));
  assert.deepEqual(reads, ['pr-7'], 'one read serves every request within the cache time');
  for (let n = 1; n <= 200; n += 1) await through('/', `override_build_number=pr-${n}`, host('d111.cloudfront.net'));
  assert.ok(reads.length <= 202);
});

test('the host pr-<n>.<previewDomain> serves the alias; hostile hosts never reach a path', async () => {
  setUp({ version: 'pr-7-12' });
  const got = await through('/', '', host('pr-7.preview.example.com'));
  assert.equal(got.uri, '/site/pr-7-12/index.html');
  assert.equal(value(got.headers, 'x-robots-tag'), 'noindex');
  assert.equal(got.headers['set-cookie'], undefined, 'a host link sets no cookie');
  assert.equal((await through('/', '', host('pr-7.preview.example.com:443'))).uri, '/site/pr-7-12/index.html', 'a valid port');
  for (const elsewhere of ['pr-7.evil.com', 'pr-7.preview.example.com.evil.com', 'preview.example.com']) {
    const answer = await through('/', '', host(elsewhere));
    assert.equal(answer.uri, '/site/1/index.html', elsewhere);
    assert.equal(value(answer.headers, 'x-robots-tag'), null, elsewhere);
  }
  // Any other name under the preview domain reaches no path and is never the live site.
  for (const hostile of [
    'PR-7.preview.example.com',
    'pr-7.preview.example.com.',
    'pr-7..preview.example.com',
    'pr-7.preview.example.com:99999',
    'pr-07.preview.example.com',
    'a.pr-7.preview.example.com',
    '...preview.example.com',
  ]) {
    const answer = await router.handler(event('/', '', host(hostile)));
    assert.equal(answer.status, '404', hostile);
    assert.equal(answer.body, 'no preview at this host: preview hosts are pr-<n> under the preview domain\n', hostile);
    assert.equal(value(answer.headers, 'x-robots-tag'), 'noindex', hostile);
  }
});

test('in origin-path mode a preview host answers 404 at viewer-request: the host is not in the cache key there', async () => {
  setUp({ version: 'pr-7-12' }, { mode: 'origin-path' });
  for (const [at, query, body] of [
    ['pr-7.preview.example.com', '', 'preview hosts need an ssm: pointer: use the preview link (?override_build_number=pr-<n>)\n'],
    ['www.preview.example.com', 'override_build_number=pr-7', 'preview hosts need an ssm: pointer: use the preview link (?override_build_number=pr-<n>)\n'],
    ['pr-7.preview.example.com', 'override_build_number=clear', 'preview cookies cleared: a preview host shows only previews, never the live site\n'],
  ]) {
    const answer = await router.handler(event('/', query, host(at)));
    assert.equal(answer.status, '404', at);
    assert.equal(answer.body, body, at);
    assert.equal(value(answer.headers, 'x-robots-tag'), 'noindex', at);
  }
  const live = await router.handler(event('/', '', host('d111.cloudfront.net')));
  assert.equal(live.status, undefined, 'any other host goes on to the cache and origin-request');
});

test('origin-response marks every answer of a preview noindex, its 404s too, but never a cached pooled object', async () => {
  setUp({ version: 'pr-7-12' });
  const respond = async (uri, status, headers = {}) => {
    const request = { uri, querystring: '', headers };
    const response = { status, statusDescription: 'x', headers: {} };
    const out = await router.handler({ Records: [{ cf: { config: { eventType: 'origin-response' }, request, response } }] });
    return [out.status, value(out.headers, 'x-robots-tag')];
  };
  const pinned = { 'x-cutover-version': [{ key: 'x-cutover-version', value: 'pr-7-12' }] };
  assert.deepEqual(await respond('/site/pr-7-12/index.html', '403'), ['404', 'noindex'], 'a request racing the close');
  assert.deepEqual(await respond('/site/pr-7-12/index.html', '200'), ['200', 'noindex']);
  assert.deepEqual(await respond('/site/pr-7-12/404.html', '200'), ['404', 'noindex']);
  assert.deepEqual(await respond('/site/_shared/assets/a-Bx9.js', '403', pinned), ['404', 'noindex']);
  assert.deepEqual(await respond('/site/_shared/assets/a-Bx9.js', '200', pinned), ['200', null], 'shared by every version');
  assert.deepEqual(await respond('/site/1/index.html', '403'), ['404', null], 'the live site is indexable');
  assert.deepEqual(await respond('/site/pr-7/index.html', '403'), ['404', null], 'an alias is no preview release');
});

test('with an override secret only signed links pin, and a preview host answers 404 saying so', async () => {
  setUp({ version: 'pr-7-12' }, { overrideSecret: 's3cret' });
  const answer = await router.handler(event('/', '', host('pr-7.preview.example.com')));
  assert.equal(answer.status, '404');
  assert.equal(answer.body, 'preview hosts are off with override-secret: use the signed preview link\n');
  assert.equal(value(answer.headers, 'x-robots-tag'), 'noindex');
  const got = await through('/', 'override_build_number=pr-7', host('d111.cloudfront.net'));
  assert.equal(value(got.headers, 'x-cutover-override'), 'unsigned');
});

test('an unreadable alias keeps the last good answer; a bad or missing one, or one naming no preview of its pull request, pins nothing', async (t) => {
  t.mock.method(console, 'warn', () => {});
  setUp({ version: 'pr-7-11' });
  const values = ['pr-7-11', new Error('ThrottlingException'), '../../x', 'pr-7-12', '1', 'pr-8-1', 'pr-70-1', 'pr-7-'];
  router.setAliasReader(async () => {
    const next = values.shift();
    if (next instanceof Error) throw next;
    return next;
  });
  assert.equal(await router.aliasTarget('pr-7', 1_000), 'pr-7-11');
  assert.equal(await router.aliasTarget('pr-7', 3_000), 'pr-7-11', 'cached');
  assert.equal(await router.aliasTarget('pr-7', 10_000), 'pr-7-11', 'unreadable: the last good one');
  assert.equal(await router.aliasTarget('pr-7', 20_000), null, 'not a version');
  assert.equal(await router.aliasTarget('pr-7', 30_000), 'pr-7-12');
  for (const [at, other] of [[40_000, '1'], [50_000, 'pr-8-1'], [60_000, 'pr-70-1'], [70_000, 'pr-7-']]) {
    assert.equal(await router.aliasTarget('pr-7', at), null, `${other} is no preview of pull request 7`);
  }
  router.setAliasReader(async () => null);
  const got = await through('/', 'override_build_number=pr-8', host('d111.cloudfront.net'));
  assert.equal(got.uri, '/site/1/index.html');
  assert.equal(value(got.headers, 'x-cutover-override'), 'unknown-version');
});

test('the router reads aliases over HTTP (moto): the SSM sibling parameter, and the S3 object in origin-path mode', async (t) => {
  const warnings = t.mock.method(console, 'warn', () => {});
  const moto = await startMoto();
  const { endpoint } = moto;
  try {
    const { SSMClient, PutParameterCommand } = require('@aws-sdk/client-ssm');
    const { S3Client, CreateBucketCommand, PutObjectCommand } = require('@aws-sdk/client-s3');
    const ssm = new SSMClient({ region: 'us-east-1', endpoint });
    await ssm.send(new PutParameterCommand({ Name: '/cutover/b/site/active-pr-7', Value: 'pr-7-3', Type: 'String' }));
    const s3 = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: 'alias-bucket' }));
    const body = JSON.stringify({ version: 'pr-9-4' });
    await s3.send(new PutObjectCommand({ Bucket: 'alias-bucket', Key: 'site/_cutover/aliases/pr-9.json', Body: body }));

    router.configure({ mode: 'ssm', parameterName: '/cutover/b/site/active', bucket: 'alias-bucket', prefix: 'site', cacheSeconds: 5 });
    router.setAliasReader(undefined);
    assert.equal(await router.aliasTarget('pr-7', 0), 'pr-7-3');
    assert.equal(await router.aliasTarget('pr-8', 0), null, 'no such parameter: no alias');
    router.configure({ mode: 'origin-path' });
    assert.equal(await router.aliasTarget('pr-9', 0), 'pr-9-4');
    assert.equal(await router.aliasTarget('pr-8', 0), null, 'no such object: no alias');
    assert.equal(warnings.mock.callCount(), 0, 'a missing alias is no failure');
  } finally {
    moto.stop();
  }
});
