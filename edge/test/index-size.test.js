'use strict';
// What a routing index costs the router: heap and cold-load time (parse, Set, first route) for
// releases of 2,000, 10,000 and 100,000 files, against the 128 MB a viewer function has. The
// figures are printed, and stated in the README's edge section.

const test = require('node:test');
const assert = require('node:assert/strict');

const router = require('../router.js');

/** A release shaped like a real build: nested pages, hashed assets, long-ish paths. */
function files(count) {
  const list = ['index.html', '404.html'];
  for (let i = 0; list.length < count; i += 1) {
    list.push(i % 3 === 0 ? `blog/2024/post-${i}/index.html` : `assets/chunks/component-${i}.3f9a2c1b.js`);
  }
  return list;
}

for (const count of [2_000, 10_000, 100_000]) {
  test(`a ${count}-file index loads within the budget`, async () => {
    const body = JSON.stringify({ format: 1, files: files(count) });
    router.configure({ mode: 'ssm', notFound: 'auto', overrideSecret: undefined, cacheSeconds: 5 });
    router.setParameterReader(async () => '41');
    router.setIndexReader(async () => JSON.parse(body).files);
    global.gc?.();
    const before = process.memoryUsage().heapUsed;
    const started = process.hrtime.bigint();
    const request = { uri: '/blog/2024/post-3/', querystring: '', headers: {} };
    const result = await router.handler({ Records: [{ cf: { config: { eventType: 'viewer-request' }, request } }] });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    global.gc?.();
    const mb = (process.memoryUsage().heapUsed - before) / 1024 / 1024;
    console.log(`index of ${count} files: ${(body.length / 1024 / 1024).toFixed(1)} MB of JSON, +${mb.toFixed(1)} MB heap, cold load and first route ${ms.toFixed(0)} ms`);
    assert.equal(result.uri, '/site/41/blog/2024/post-3/index.html');
    assert.ok(mb < 32, `${mb} MB: four kept indexes must fit in 128 MB`);
  });
}
