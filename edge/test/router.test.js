'use strict';
// The router under Node's own test runner, with CloudFront's real event shapes: the shared vectors
// (also run by the Rust tests against `cutover serve`), SSM failure, timeouts and bad values, the
// bounded index cache, and the parameter read from moto's SSM over HTTP.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');

const router = require('../router.js');
const doc = require('../vectors.json');

function requestEvent(vector, eventType = 'viewer-request') {
  const headers = { host: [{ key: 'Host', value: 'd111111abcdef8.cloudfront.net' }] };
  if (vector.cookie !== null && vector.cookie !== undefined) {
    headers.cookie = [{ key: 'Cookie', value: vector.cookie }];
  }
  const request = { clientIp: '203.0.113.178', method: 'GET', uri: vector.uri, querystring: vector.query, headers };
  return { Records: [{ cf: { config: { distributionId: 'EDFDVBD6EXAMPLE', eventType }, request } }] };
}

function responseEvent(eventType, request, response) {
  return { Records: [{ cf: { config: { distributionId: 'EDFDVBD6EXAMPLE', eventType }, request, response } }] };
}

/** Sets the router up for a vector: its fixture's releases, its active version, its settings. */
function setUp(vector) {
  router.configure({ mode: 'ssm', notFound: vector.not_found || 'auto', overrideSecret: vector.secret || undefined });
  router.setParameterReader(async () => vector.active ?? '-');
  const known = doc.releases[vector.fixture];
  router.setIndexReader(async (version) => (known.includes(version) ? doc.fixtures[vector.fixture] : null));
}

/** One request through CloudFront's events as a cache miss would run them: { status, headers, file, location }. */
async function through(vector) {
  const result = await router.handler(requestEvent(vector));
  if (result.status !== undefined) {
    const header = (name) => (result.headers[name] || [])[0]?.value ?? null;
    return { status: Number(result.status), headers: result.headers, file: null, location: header('location') };
  }
  assert.equal(result.headers['set-cookie'], undefined, 'the request to the cache never carries Set-Cookie');
  const origin = { status: '200', statusDescription: 'OK', headers: { 'cache-control': [{ key: 'Cache-Control', value: 'max-age=31536000, immutable' }] } };
  const fromOrigin = await router.handler(responseEvent('origin-response', result, origin));
  const response = await router.handler(responseEvent('viewer-response', result, fromOrigin));
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
    if (vector.set_cookies.length > 0 || vector.version !== vector.active) {
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

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function startMoto() {
  const binary = process.env.CUTOVER_MOTO_SERVER || path.join(__dirname, '..', '..', '.venv', 'bin', 'moto_server');
  const port = await freePort();
  const child = spawn(binary, ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const response = await fetch(`${endpoint}/moto-api/`);
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`moto did not answer on ${endpoint}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // The SDK clients the router builds find moto through the standard variables.
  Object.assign(process.env, {
    AWS_ENDPOINT_URL: endpoint,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_REGION: 'us-east-1',
  });
  return { endpoint, stop: () => child.kill() };
}

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

test('the router reads routing indexes from S3 over HTTP (moto): the index, else the record, else no release', async () => {
  const moto = await startMoto();
  try {
    const { S3Client, CreateBucketCommand, PutObjectCommand } = require('@aws-sdk/client-s3');
    const config = require('../config.json');
    const s3 = new S3Client({ region: 'us-east-1', endpoint: moto.endpoint, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: config.bucket }));
    const put = (key, doc) => s3.send(new PutObjectCommand({ Bucket: config.bucket, Key: `site/_cutover/${key}`, Body: JSON.stringify(doc) }));
    await put('routes/12.json', { format: 1, files: ['index.html', 'about/index.html'] });
    await put('releases/11.json', { version: '11', files: { 'index.html': { md5: 'x', size: 1 }, 'CNAME': { md5: 'y', size: 2 } } });
    router.configure({ mode: 'ssm', prefix: 'site', cacheSeconds: 5 });
    router.setIndexReader(undefined);
    assert.deepEqual([...(await router.releaseIndex('12', 0))], ['index.html', 'about/index.html']);
    assert.deepEqual([...(await router.releaseIndex('11', 0))], ['index.html', 'CNAME'], 'staged before the index');
    assert.equal(await router.releaseIndex('13', 0), null, 'not a recorded release');
  } finally {
    moto.stop();
  }
});
