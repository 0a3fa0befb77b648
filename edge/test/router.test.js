'use strict';
// The router under Node's own test runner, with CloudFront's real event shapes: the shared vectors
// (also run by the Rust tests against `cutover serve`), SSM failure, timeouts and bad values, the
// bounded index cache, and the parameter read from moto's SSM over HTTP.

const test = require('node:test');
const assert = require('node:assert/strict');

const router = require('../router.js');
const { startMoto } = require('./moto.js');
const doc = require('../vectors.json');

function requestEvent(vector, eventType = 'viewer-request') {
  // A vector's preview host names `<preview-domain>`, the domain baked in below.
  const host = vector.host ? vector.host.replace('<preview-domain>', doc.preview_domain) : 'd111111abcdef8.cloudfront.net';
  const headers = { host: [{ key: 'Host', value: host }] };
  if (vector.cookie !== null && vector.cookie !== undefined) {
    headers.cookie = [{ key: 'Cookie', value: vector.cookie }];
  }
  for (const [name, value] of Object.entries(vector.headers || {})) {
    headers[name] = [{ key: name, value }];
  }
  const request = { clientIp: '203.0.113.178', method: 'GET', uri: vector.uri, querystring: vector.query, headers };
  return { Records: [{ cf: { config: { distributionId: 'EDFDVBD6EXAMPLE', eventType }, request } }] };
}

function responseEvent(eventType, request, response) {
  return { Records: [{ cf: { config: { distributionId: 'EDFDVBD6EXAMPLE', eventType }, request, response } }] };
}

/** Sets the router up for a vector: its fixture's releases, its active version, the aliases, its settings. */
function setUp(vector) {
  router.configure({
    mode: 'ssm',
    notFound: vector.not_found || 'auto',
    overrideSecret: vector.secret || undefined,
    previewDomain: doc.preview_domain,
  });
  router.setParameterReader(async () => vector.active ?? '-');
  router.setAliasReader(async (alias) => doc.aliases[alias] ?? null);
  const known = doc.releases[vector.fixture];
  router.setIndexReader(async (version) => (known.includes(version) ? doc.fixtures[vector.fixture] : null));
  router.setPageReader(async (version) => `/site/${version}/404.html`);
}

/**
 * One request through CloudFront's events as a cache miss would run them: { status, headers,
 * file, location }. As in CloudFront, no viewer-response runs on an origin's answer of 400 or more.
 */
async function through(vector) {
  const result = await router.handler(requestEvent(vector));
  if (result.status !== undefined) {
    const header = (name) => (result.headers[name] || [])[0]?.value ?? null;
    const page = result.status === '404' && String(result.body).startsWith('/site/') ? result.body : null;
    return { status: Number(result.status), headers: result.headers, file: page, location: header('location'), body: result.body };
  }
  assert.equal(result.headers['set-cookie'], undefined, 'the request to the cache never carries Set-Cookie');
  const origin = { status: '200', statusDescription: 'OK', headers: { 'cache-control': [{ key: 'Cache-Control', value: 'max-age=31536000, immutable' }] } };
  const fromOrigin = await router.handler(responseEvent('origin-response', result, origin));
  const response =
    Number(fromOrigin.status) >= 400 ? fromOrigin : await router.handler(responseEvent('viewer-response', result, fromOrigin));
  return { status: Number(response.status), headers: response.headers, file: decodeURIComponent(result.uri), location: null };
}

for (const vector of doc.vectors) {
  test(`vector: ${vector.name}`, async () => {
    setUp(vector);
    const got = await through(vector);
    const header = (name) => (got.headers[name] || [])[0]?.value ?? null;
    assert.equal(got.status, vector.status);
    assert.equal(header('x-cutover-version'), vector.version);
    assert.equal(header('x-cutover-override'), vector.override);
    assert.equal(got.location, vector.location);
    if (vector.file !== null) {
      assert.equal(got.file, `/site/${vector.version}/${vector.file}`);
    }
    assert.deepEqual((got.headers['set-cookie'] || []).map((h) => h.value), vector.set_cookies);
    if ('robots' in vector) {
      assert.equal(header('x-robots-tag'), vector.robots);
    }
    if ('body' in vector) {
      assert.equal(got.body, `${vector.body}\n`);
    }
    if ('cache_control' in vector) {
      assert.equal(header('cache-control'), vector.cache_control);
    } else if (vector.pinned) {
      assert.notEqual(header('cache-control'), 'private, no-cache', 'a framework pin is cacheable');
    } else if (vector.set_cookies.length > 0 || vector.version !== vector.active) {
      assert.equal(header('cache-control'), 'private, no-cache', 'never a public Set-Cookie or override');
    }
  });
}

test('an invalid SSM value keeps the last good one and logs', async (t) => {
  const warnings = t.mock.method(console, 'warn', () => {});
  router.configure({ cacheSeconds: 5 });
  const values = ['7', '../x', '', '41\n', '8'];
  router.setParameterReader(async () => values.shift());
  assert.equal(await router.activeVersion(1_000), '7');
  assert.equal(await router.activeVersion(10_000), '7', '../x');
  assert.equal(await router.activeVersion(20_000), '7', 'empty');
  assert.equal(await router.activeVersion(30_000), '7', 'a newline');
  assert.equal(await router.activeVersion(40_000), '8');
  assert.equal(warnings.mock.callCount(), 3);
  assert.match(warnings.mock.calls[0].arguments[0], /keeping 7/);
});

test('a hung SSM times out, is retried a bounded number of times, and the cached value is used', async (t) => {
  t.mock.method(console, 'warn', () => {});
  let calls = 0;
  router.setParameterReader(async () => {
    calls += 1;
    return calls === 1 ? '7' : new Promise(() => {});
  });
  assert.equal(await router.activeVersion(1_000), '7');
  const started = Date.now();
  assert.equal(await router.activeVersion(60_000), '7', 'kept while SSM hangs');
  assert.equal(calls, 3, 'one try and one retry');
  assert.ok(Date.now() - started < 3_000, 'bounded by the call timeout');
});

test('a cold container without a value answers 503 with Retry-After and does not ask SSM per request', async (t) => {
  t.mock.method(console, 'warn', () => {});
  router.configure({ mode: 'ssm', notFound: 'auto', overrideSecret: undefined });
  let calls = 0;
  router.setParameterReader(async () => {
    calls += 1;
    throw new Error('ThrottlingException');
  });
  router.setIndexReader(async () => doc.fixtures.multi);
  for (let i = 0; i < 20; i += 1) {
    const result = await router.handler(requestEvent({ uri: '/', query: '', cookie: null }));
    assert.equal(result.status, '503');
    assert.deepEqual(result.headers['retry-after'], [{ key: 'Retry-After', value: '5' }]);
  }
  assert.equal(calls, 2, 'one read (with its retry) for twenty requests');
});

test('an active value that is not a version is never put into a path', async (t) => {
  t.mock.method(console, 'warn', () => {});
  router.setParameterReader(async () => '../../etc');
  const result = await router.handler(requestEvent({ uri: '/', query: '', cookie: null }));
  assert.equal(result.status, '503');
});

test('routing indexes are kept per version, bounded, and an unknown version is asked again only after the cache', async () => {
  router.configure({ cacheSeconds: 5 });
  const asked = [];
  router.setIndexReader(async (version) => {
    asked.push(version);
    return version.startsWith('x') ? null : ['index.html'];
  });
  for (const version of ['1', '2', '1', '3', '4', '5', '1']) await router.releaseIndex(version, 0);
  assert.deepEqual(asked, ['1', '2', '3', '4', '5']);
  await router.releaseIndex('6', 0);
  await router.releaseIndex('2', 0);
  assert.deepEqual(asked.slice(5), ['6', '2'], 'the least recently used index was let go');
  assert.equal(await router.releaseIndex('x9', 0), null);
  assert.equal(await router.releaseIndex('x9', 1_000), null);
  assert.equal(asked.filter((v) => v === 'x9').length, 1);
  await router.releaseIndex('x9', 10_000);
  assert.equal(asked.filter((v) => v === 'x9').length, 2);
});

test('unknown override values cost a bounded number of reads: remembered, capped per second, never evicting the live index', async (t) => {
  const warn = t.mock.method(console, 'warn', () => {});
  router.configure({ mode: 'ssm', notFound: 'auto', overrideSecret: undefined, cacheSeconds: 5 });
  router.setParameterReader(async () => '41');
  const reads = [];
  router.setIndexReader(async (version) => {
    reads.push(version);
    return ['40', '41'].includes(version) ? doc.fixtures.multi : null;
  });
  for (let n = 0; n < 100; n += 1) {
    const answer = await router.handler(requestEvent({ uri: '/', query: `override_build_number=u${n}`, cookie: null }));
    assert.equal(answer.uri, '/site/41/index.html');
  }
  assert.ok(reads.filter((v) => v.startsWith('u')).length <= 32, `${reads.length} reads for 100 unknown values`);
  assert.equal(reads.filter((v) => v === '41').length, 1, 'the live index was read once, never evicted');
  const logged = warn.mock.calls.filter((c) => String(c.arguments[0]).includes('new versions or aliases')).length;
  assert.ok(logged >= 1 && logged <= 2, `logged once a second, not ${logged} times`);
  // The cap and the memory of unknown values, at a fixed time.
  router.setIndexReader(async (version) => {
    reads.push(version);
    return version === '40' ? doc.fixtures.multi : null;
  });
  reads.length = 0;
  for (let n = 0; n < 40; n += 1) await router.releaseIndex(`w${n}`, 1_000_000);
  assert.equal(reads.length, 16, 'at most 16 values never seen are read a second');
  assert.equal(await router.releaseIndex('40', 1_000_500), null, 'beyond the cap: unknown, unread');
  assert.notEqual(await router.releaseIndex('40', 1_001_000), null, 'read in the next second');
  reads.length = 0;
  await router.releaseIndex('w1', 1_002_000);
  assert.deepEqual(reads, [], 'an unknown version is remembered for edge-cache');
  await router.releaseIndex('w1', 1_006_000);
  assert.deepEqual(reads, ['w1'], 'and read again after it');
  // Aliases: capped the same way, and kept LRU instead of wiped.
  router.configure({ cacheSeconds: 60 });
  const aliasReads = [];
  router.setAliasReader(async (alias) => {
    aliasReads.push(alias);
    return alias === 'pr-1' ? 'pr-1-40' : null;
  });
  assert.equal(await router.aliasTarget('pr-1', 2_000_000), 'pr-1-40');
  for (let n = 2; n < 100; n += 1) await router.aliasTarget(`pr-${n}`, 2_000_000 + n * 100);
  aliasReads.length = 0;
  assert.equal(await router.aliasTarget('pr-1', 2_011_000), 'pr-1-40');
  assert.deepEqual(aliasReads, [], 'a hundred other aliases did not wipe the cache');
  for (let n = 100; n < 200; n += 1) await router.aliasTarget(`pr-${n}`, 2_020_000);
  assert.equal(aliasReads.length, 16, 'at most 16 aliases never seen are read a second');
  router.setAliasReader(undefined);
});

test('a pruned release stops being pinnable: origin-response drops its index at once, other containers after the ttl', async (t) => {
  t.mock.method(console, 'warn', () => {});
  router.configure({ mode: 'ssm', notFound: 'auto', overrideSecret: undefined, cacheSeconds: 5 });
  router.setParameterReader(async () => '4');
  const known = new Set(['2', '4']);
  router.setIndexReader(async (version) => (known.has(version) ? ['index.html', '404.html'] : null));
  router.setPageReader(async (version) => `gone ${version}`);
  const pinned = { uri: '/', query: '', cookie: 'Build-Number=2; Override=true' };
  assert.equal((await router.handler(requestEvent(pinned))).uri, '/site/2/index.html');
  known.delete('2');
  const missing = { status: '403', statusDescription: 'Forbidden', headers: {} };
  await router.handler(responseEvent('origin-response', { ...requestEvent(pinned).Records[0].cf.request, uri: '/site/2/index.html' }, missing));
  const after = await router.handler(requestEvent(pinned));
  assert.equal(after.uri, '/site/4/index.html', 'routed to the live release');
  const link = await router.handler(requestEvent({ uri: '/', query: 'override_build_number=2', cookie: null }));
  assert.equal(link.uri, '/site/4/index.html');
  // A container that never saw the origin's answer reads the index again after the ttl.
  known.add('3');
  assert.notEqual(await router.releaseIndex('3', 0), null);
  known.delete('3');
  assert.notEqual(await router.releaseIndex('3', 59_999), null, 'trusted within the ttl');
  assert.equal(await router.releaseIndex('3', 60_000), null, 'read again past it');
  let failing = false;
  router.setIndexReader(async () => {
    if (failing) throw new Error('S3 is down');
    return ['index.html'];
  });
  await router.releaseIndex('5', 0);
  failing = true;
  assert.deepEqual([...(await router.releaseIndex('5', 61_000))], ['index.html'], 'kept while the read fails');
});

test('a missing page ignores Range and conditions: the request to the origin carries none', async () => {
  router.configure({ mode: 'ssm', notFound: 'auto', overrideSecret: undefined });
  router.setParameterReader(async () => '41');
  router.setIndexReader(async () => doc.fixtures.multi);
  const withHeaders = (uri) => {
    const event = requestEvent({ uri, query: '', cookie: null });
    const headers = event.Records[0].cf.request.headers;
    headers.range = [{ key: 'Range', value: 'bytes=0-3' }];
    headers['if-none-match'] = [{ key: 'If-None-Match', value: '*' }];
    headers['if-modified-since'] = [{ key: 'If-Modified-Since', value: 'Fri, 01 Jan 2100 00:00:00 GMT' }];
    return event;
  };
  for (const uri of ['/nope', '/404.html']) {
    const missing = await router.handler(withHeaders(uri));
    assert.equal(missing.uri, '/site/41/404.html');
    assert.deepEqual(Object.keys(missing.headers).sort(), ['host'], uri);
  }
  const page = await router.handler(withHeaders('/'));
  assert.deepEqual(Object.keys(page.headers).sort(), ['host', 'if-modified-since', 'if-none-match', 'range']);
});

test('a response that must carry cookies or override headers sends the origin no Range or conditions, in both styles', async () => {
  router.configure({ mode: 'ssm', notFound: 'auto', overrideSecret: undefined });
  router.setParameterReader(async () => '41');
  router.setIndexReader(async (version) => (['40', '41'].includes(version) ? doc.fixtures.multi : null));
  const ranged = (query, cookie) => {
    const event = requestEvent({ uri: '/', query, cookie });
    const headers = event.Records[0].cf.request.headers;
    headers.range = [{ key: 'Range', value: 'bytes=-0' }];
    headers['if-match'] = [{ key: 'If-Match', value: '"nope"' }];
    return event;
  };
  for (const mode of ['ssm', 'origin-path']) {
    router.configure({ mode });
    for (const [query, cookie] of [['override_build_number=clear', null], ['override_build_number=40', null], ['override_build_number=77', null], ['', 'Build-Number=40; Override=true']]) {
      const request = await router.handler(ranged(query, cookie));
      assert.deepEqual(Object.keys(request.headers).sort(), cookie ? ['cookie', 'host'] : ['host'], `${mode} ${query}`);
    }
    const plain = await router.handler(ranged('', null));
    assert.deepEqual(Object.keys(plain.headers).sort(), ['host', 'if-match', 'range'], mode);
  }
  router.configure({ mode: 'ssm' });
});

test('a 404 that must carry cookies or an override header is answered by viewer-request, with the page up to its bound', async (t) => {
  t.mock.method(console, 'warn', () => {});
  router.configure({ mode: 'ssm', notFound: 'auto', overrideSecret: undefined });
  router.setParameterReader(async () => '41');
  router.setIndexReader(async (version) => (['40', '41'].includes(version) ? doc.fixtures.multi : null));
  const reads = [];
  router.setPageReader(async (version) => {
    reads.push(version);
    return version === '41' ? '<h1>gone</h1>' : null;
  });
  const cleared = await router.handler(requestEvent({ uri: '/nope', query: 'override_build_number=clear', cookie: null }));
  assert.equal(cleared.status, '404');
  assert.equal(cleared.body, '<h1>gone</h1>');
  assert.equal(cleared.headers['content-type'][0].value, 'text/html; charset=utf-8');
  assert.equal(cleared.headers['cache-control'][0].value, 'private, no-cache');
  assert.equal(cleared.headers['set-cookie'].length, 2);
  await router.handler(requestEvent({ uri: '/gone', query: 'override_build_number=77', cookie: null }));
  assert.deepEqual(reads, ['41'], 'the page is read once per version');
  const big = await router.handler(requestEvent({ uri: '/nope', query: '', cookie: 'Build-Number=40; Override=true' }));
  assert.equal(big.status, '404');
  assert.equal(big.body, 'not found\n', 'a page over the bound (or missing) is a plain 404');
  assert.equal(big.headers['x-robots-tag'][0].value, 'noindex');
  const plain = await router.handler(requestEvent({ uri: '/nope', query: '', cookie: null }));
  assert.equal(plain.uri, '/site/41/404.html', 'a 404 with nothing to add is left to the origin and the cache');
});

test('the router reads the active version from SSM over HTTP (moto)', async () => {
  const moto = await startMoto();
  try {
    const { SSMClient, PutParameterCommand } = require('@aws-sdk/client-ssm');
    const config = require('../config.json');
    const ssm = new SSMClient({ region: 'us-east-1', endpoint: moto.endpoint });
    await ssm.send(new PutParameterCommand({ Name: config.parameterName, Value: '12', Type: 'String' }));
    router.configure({ mode: 'ssm', notFound: 'auto', overrideSecret: undefined });
    router.setParameterReader(undefined);
    router.setIndexReader(async () => ['index.html', 'docs/intro/index.html']);
    const result = await router.handler(requestEvent({ uri: '/docs/intro/', query: '', cookie: null }));
    assert.equal(result.uri, '/site/12/docs/intro/index.html');
  } finally {
    moto.stop();
  }
});

test('the router reads routing indexes and 404 pages from S3 over HTTP (moto): the index, else the record, else no release', async (t) => {
  const moto = await startMoto();
  try {
    const { S3Client, CreateBucketCommand, PutObjectCommand } = require('@aws-sdk/client-s3');
    const config = require('../config.json');
    const s3 = new S3Client({ region: 'us-east-1', endpoint: moto.endpoint, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: config.bucket }));
    const put = (key, doc) => s3.send(new PutObjectCommand({ Bucket: config.bucket, Key: `site/_cutover/${key}`, Body: JSON.stringify(doc) }));
    await put('routes/12.json', { format: 1, files: ['index.html', 'about/index.html'] });
    await put('releases/11.json', { version: '11', files: { 'index.html': { md5: 'x', size: 1 }, 'CNAME': { md5: 'y', size: 2 } } });
    await s3.send(new PutObjectCommand({ Bucket: config.bucket, Key: 'site/_cutover/routes/14.json', Body: '{"format":1,"fil' }));
    await put('releases/14.json', { version: '14', files: { 'index.html': { md5: 'x', size: 1 } } });
    const page = (version, body) => s3.send(new PutObjectCommand({ Bucket: config.bucket, Key: `site/${version}/404.html`, Body: body }));
    await page('12', '<h1>gone</h1>');
    await page('11', 'x'.repeat(32 * 1024 + 1));
    router.configure({ mode: 'ssm', prefix: 'site', cacheSeconds: 5 });
    router.setIndexReader(undefined);
    assert.deepEqual([...(await router.releaseIndex('12', 0))], ['index.html', 'about/index.html']);
    assert.deepEqual([...(await router.releaseIndex('11', 0))], ['index.html', 'CNAME'], 'staged before the index');
    assert.equal(await router.releaseIndex('13', 0), null, 'not a recorded release');
    t.mock.method(console, 'warn', () => {});
    assert.deepEqual([...(await router.releaseIndex('14', 0))], ['index.html'], 'a damaged index falls back to the record');
    router.setPageReader(undefined);
    assert.equal(await router.notFoundPage('12'), '<h1>gone</h1>');
    assert.equal(await router.notFoundPage('11'), null, 'over the bound');
    assert.equal(await router.notFoundPage('13'), null, 'missing');
  } finally {
    moto.stop();
  }
});
