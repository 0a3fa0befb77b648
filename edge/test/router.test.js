'use strict';
// The router under Node's own test runner, with CloudFront's real event shapes: the shared vectors
// (also run by the Rust tests against `cutover serve`), SSM failure, and the parameter read from
// moto's SSM over HTTP.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');

const router = require('../router.js');
const vectors = require('../vectors.json');

function requestEvent(vector) {
  const headers = { host: [{ key: 'Host', value: 'd111111abcdef8.cloudfront.net' }] };
  if (vector.cookie !== null) {
    headers.cookie = [{ key: 'Cookie', value: vector.cookie }];
  }
  const request = { clientIp: '203.0.113.178', method: 'GET', uri: vector.uri, querystring: vector.query, headers };
  return { Records: [{ cf: { config: { distributionId: 'EDFDVBD6EXAMPLE', eventType: 'viewer-request' }, request } }] };
}

function responseEvent(request) {
  const response = {
    status: '200',
    statusDescription: 'OK',
    headers: { 'content-type': [{ key: 'Content-Type', value: 'text/html; charset=utf-8' }] },
  };
  return { Records: [{ cf: { config: { distributionId: 'EDFDVBD6EXAMPLE', eventType: 'viewer-response' }, request, response } }] };
}

for (const vector of vectors) {
  test(`vector: ${vector.name}`, async () => {
    router.setParameterReader(async () => vector.active);
    const result = await router.handler(requestEvent(vector));
    if (vector.path === null) {
      assert.equal(result.status, vector.version === null ? '404' : '400');
      assert.equal(result.headers['set-cookie'], undefined);
      return;
    }
    assert.equal(decodeURIComponent(result.uri), vector.path);
    assert.equal(result.headers['set-cookie'], undefined, 'the request to the cache never carries Set-Cookie');
    const response = await router.handler(responseEvent(result));
    assert.deepEqual(response.headers['x-cutover-version'], [{ key: 'x-cutover-version', value: vector.version }]);
    const cookies = (response.headers['set-cookie'] || []).map((h) => h.value);
    assert.deepEqual(cookies, vector.set_cookies);
  });
}

test('Set-Cookie only ever answers a request that carried the override query', async () => {
  for (const vector of vectors.filter((v) => v.path !== null)) {
    router.setParameterReader(async () => vector.active);
    const request = await router.handler(requestEvent(vector));
    const response = await router.handler(responseEvent(request));
    const carriesQuery = new URLSearchParams(vector.query).has('override_build_number');
    assert.equal(Boolean(response.headers['set-cookie']), carriesQuery && vector.set_cookies.length > 0, vector.name);
  }
});

test('a failing SSM keeps the last good version; a first failure is an error', async () => {
  let calls = 0;
  router.setParameterReader(async () => {
    calls += 1;
    if (calls === 1) return '7';
    throw new Error('ThrottlingException');
  });
  assert.equal(await router.activeVersion(1_000), '7');
  assert.equal(await router.activeVersion(2_000), '7', 'cached');
  assert.equal(calls, 1);
  assert.equal(await router.activeVersion(60_000), '7', 'kept while SSM fails');
  assert.equal(calls, 2);

  router.setParameterReader(async () => {
    throw new Error('down');
  });
  await assert.rejects(() => router.activeVersion(1_000), /down/);
});

test('an active value that is not a version is never put into a path', async () => {
  router.setParameterReader(async () => '../../etc');
  const result = await router.handler(requestEvent({ uri: '/', query: '', cookie: null }));
  assert.equal(result.status, '404');
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
  return { endpoint, stop: () => child.kill() };
}

test('the router reads the active version from SSM over HTTP (moto)', async () => {
  const moto = await startMoto();
  try {
    Object.assign(process.env, {
      AWS_ENDPOINT_URL: moto.endpoint,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_REGION: 'us-east-1',
    });
    const { SSMClient, PutParameterCommand } = require('@aws-sdk/client-ssm');
    const config = require('../config.json');
    const ssm = new SSMClient({ region: 'us-east-1', endpoint: moto.endpoint });
    await ssm.send(new PutParameterCommand({ Name: config.parameterName, Value: '12', Type: 'String' }));
    router.setParameterReader(undefined);
    const result = await router.handler(requestEvent({ uri: '/docs/intro', query: '', cookie: null }));
    assert.equal(result.uri, '/site/12/index.html');
  } finally {
    moto.stop();
  }
});
