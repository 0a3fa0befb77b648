'use strict';
// What a framework pin may cost the router: `?dpl=` and `x-deployment-id` name a version a client
// varies at will, so they go through the same capped lookup as overrides and aliases (README,
// "What a named version may cost"). Counted as the S3 GETs the router really makes, through moto.

const test = require('node:test');
const assert = require('node:assert/strict');

const router = require('../router.js');
const config = require('../config.json');
const { startMoto, countCalls } = require('./moto.js');

/** The values never seen a container reads a second (NEW_READS_PER_SECOND in router.js). */
const CAP = 16;
/** The S3 GETs one unknown version costs: its routing index, then its record. */
const GETS_PER_UNKNOWN = 2;

function pinned(query, deploymentId) {
  const headers = { host: [{ key: 'Host', value: 'd111111abcdef8.cloudfront.net' }] };
  if (deploymentId !== null) headers['x-deployment-id'] = [{ key: 'x-deployment-id', value: deploymentId }];
  const request = { clientIp: '203.0.113.178', method: 'GET', uri: '/data.json', querystring: query, headers };
  return { Records: [{ cf: { config: { distributionId: 'EDFDVBD6EXAMPLE', eventType: 'viewer-request' }, request } }] };
}

test('framework pins cost at most the cap of reads a second: 200 unknown dpl and 200 x-deployment-id values, an override still reads, then a stored version still pins', async (t) => {
  const moto = await startMoto();
  const counted = await countCalls(moto);
  try {
    const { S3Client, CreateBucketCommand, PutObjectCommand } = require('@aws-sdk/client-s3');
    const s3 = new S3Client({ region: 'us-east-1', endpoint: moto.endpoint, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: config.bucket }));
    for (const version of ['39', '40', '41']) {
      const index = { format: 2, files: ['index.html', 'data.json'], pooled: [] };
      await s3.send(new PutObjectCommand({ Bucket: config.bucket, Key: `site/_cutover/routes/${version}.json`, Body: JSON.stringify(index) }));
    }
    t.mock.method(console, 'warn', () => {});
    // One second that does not pass while the requests run, however slow the machine.
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    router.configure({ mode: 'ssm', prefix: 'site', notFound: 'auto', overrideSecret: undefined, cacheSeconds: 5 });
    router.setParameterReader(async () => '41');
    router.setIndexReader(undefined);
    router.setPageReader(undefined);
    for (let n = 0; n < 200; n += 1) {
      assert.equal((await router.handler(pinned(`dpl=d${n}`, null))).uri, '/site/41/data.json', 'an unknown pin: the active version');
      assert.equal((await router.handler(pinned('', `h${n}`))).uri, '/site/41/data.json');
    }
    const gets = counted.calls.filter((call) => call.method === 'GET');
    // The cap's values, an unknown one read twice, and the live index once.
    assert.ok(gets.length <= CAP * GETS_PER_UNKNOWN + 1, `${gets.length} S3 GETs for 400 unknown pins in one second`);
    const review = { ...pinned('override_build_number=39', null) };
    review.Records[0].cf.request.uri = '/';
    const reviewed = await router.handler(review);
    assert.equal(reviewed.uri, '/site/39/index.html', 'in the same second, a reviewer\'s override of a version never seen still reads it');
    t.mock.timers.tick(1000);
    assert.equal((await router.handler(pinned('dpl=40', null))).uri, '/site/40/data.json', 'a stored version pins after the window');
    assert.equal((await router.handler(pinned('', '39'))).uri, '/site/39/data.json');
  } finally {
    counted.stop();
    moto.stop();
  }
});
