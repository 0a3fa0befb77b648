'use strict';
// cutover's CloudFront router for Lambda@Edge (Node.js 20, no build step).
//
// With an SSM pointer (mode "ssm"), viewer-request picks the version (the override query, else the
// override cookies, else the active version from the SSM parameter, cached for a few seconds) and
// rewrites the URI to /<prefix>/<version>/<file> before the cache lookup, so the version is part of
// the cache key and a promotion needs no invalidation.
//
// With a CloudFront origin-path pointer (mode "origin-path"), the distribution's origin path names
// the active version; viewer-request only applies the SPA fallback, origin-request points the
// origin at an overridden version (so the override cookies must be in the cache key), and
// origin-response names the version the origin path served.
//
// In both modes viewer-response names the version in x-cutover-version and sets the override
// cookies only when the request carried the override query: a Set-Cookie the cache could store
// would pin every later visitor. `cutover serve` implements the same contract and runs the same
// vectors (vectors.json). `cutover edge bundle` bakes config.json, since Lambda@Edge has no
// environment variables.

let config = require('./config.json');

const VERSION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const VERSION_HEADER = 'x-cutover-version';
const CLEAR = 'clear';

let readParameter = defaultParameterReader;
let cached = { version: null, readAt: -Infinity };

/** Reads the active version from SSM with the SDK the Lambda runtime provides. */
async function defaultParameterReader() {
  const { SSMClient, GetParameterCommand } = require('@aws-sdk/client-ssm');
  defaultParameterReader.client ??= new SSMClient({ region: config.region, maxAttempts: 2 });
  const out = await defaultParameterReader.client.send(new GetParameterCommand({ Name: config.parameterName }));
  return out.Parameter.Value;
}

/** The active version; the last good value is kept while SSM is slow or failing. */
async function activeVersion(now = Date.now()) {
  if (now - cached.readAt < config.cacheSeconds * 1000) {
    return cached.version;
  }
  try {
    const version = await readParameter();
    cached = { version: VERSION.test(version || '') ? version : null, readAt: now };
  } catch (error) {
    if (cached.version === null) {
      throw error;
    }
    console.warn(`cutover router: keeping ${cached.version}, reading ${config.parameterName} failed: ${error}`);
    cached = { version: cached.version, readAt: now };
  }
  return cached.version;
}

function queryValue(querystring, name) {
  return new URLSearchParams(querystring || '').get(name);
}

function cookieValue(headers, name) {
  for (const header of (headers && headers.cookie) || []) {
    for (const pair of header.value.split(';')) {
      const at = pair.indexOf('=');
      if (at > 0 && pair.slice(0, at).trim() === name) {
        return pair.slice(at + 1).trim().replace(/^"|"$/g, '');
      }
    }
  }
  return null;
}

/** The release file a request path names; `index.html` for paths without a file extension. */
function releaseFile(uri) {
  let path;
  try {
    path = decodeURIComponent(uri).replace(/^\/+/, '');
  } catch {
    return null;
  }
  const segments = path.split('/');
  if (segments.some((s) => s === '.' || s === '..') || path.includes('//')) {
    return null;
  }
  const last = segments[segments.length - 1];
  return last.indexOf('.', 1) > 0 ? path : 'index.html';
}

/** Which version a request sees and which cookies its response sets. */
function chooseVersion(request, active) {
  const asked = queryValue(request.querystring, config.overrideQuery);
  if (asked === CLEAR) {
    const setCookies = [config.versionCookie, config.overrideCookie].map((n) => `${n}=; Path=/; Max-Age=0`);
    return { version: active, source: 'active', setCookies };
  }
  if (asked !== null && VERSION.test(asked)) {
    const setCookies = [
      `${config.versionCookie}=${asked}; Path=/; SameSite=Lax`,
      `${config.overrideCookie}=true; Path=/; SameSite=Lax`,
    ];
    return { version: asked, source: 'query', setCookies };
  }
  const pinned = cookieValue(request.headers, config.versionCookie);
  if (cookieValue(request.headers, config.overrideCookie) === 'true' && pinned !== null && VERSION.test(pinned)) {
    return { version: pinned, source: 'cookie', setCookies: [] };
  }
  return { version: active, source: 'active', setCookies: [] };
}

function encodePath(path) {
  return path.split('/').map(encodeURIComponent).join('/');
}

function textResponse(status, description, body, version) {
  const headers = {
    'content-type': [{ key: 'Content-Type', value: 'text/plain; charset=utf-8' }],
    'cache-control': [{ key: 'Cache-Control', value: 'no-store' }],
  };
  if (version) {
    headers[VERSION_HEADER] = [{ key: VERSION_HEADER, value: version }];
  }
  return { status: String(status), statusDescription: description, headers, body };
}

function versionDir(version) {
  return config.prefix ? `/${config.prefix}/${version}/` : `/${version}/`;
}

/** viewer-request: choose the version and rewrite the URI under it. */
async function viewerRequest(event) {
  const request = event.Records[0].cf.request;
  if (config.mode === 'origin-path') {
    const file = releaseFile(request.uri);
    if (file === null) {
      return textResponse(400, 'Bad Request', 'unsafe path\n', null);
    }
    request.uri = '/' + encodePath(file);
    return request;
  }
  const choice = chooseVersion(request, null);
  const version = choice.version ?? (await activeVersion());
  if (!version) {
    return textResponse(404, 'Not Found', 'no release is active\n', null);
  }
  const file = releaseFile(request.uri);
  if (file === null) {
    return textResponse(400, 'Bad Request', 'unsafe path\n', version);
  }
  request.uri = versionDir(version) + encodePath(file);
  return request;
}

/** The version a `/<prefix>/<version>/...` path (a URI or an origin path) names, or null. */
function versionInPath(path) {
  const dir = config.prefix ? `/${config.prefix}/` : '/';
  const rest = path.startsWith(dir) ? path.slice(dir.length) : '';
  const version = rest.split('/')[0];
  return VERSION.test(version) ? version : null;
}

/** origin-request (origin-path mode): send an overridden request to that version's origin path. */
async function originRequest(event) {
  const request = event.Records[0].cf.request;
  const choice = chooseVersion(request, null);
  if (choice.source !== 'active' && request.origin && request.origin.s3) {
    request.origin.s3.path = versionDir(choice.version).replace(/\/$/, '');
  }
  return request;
}

/** origin-response (origin-path mode): name the version the origin path served; cached with it. */
async function originResponse(event) {
  const { request, response } = event.Records[0].cf;
  const version = request.origin && request.origin.s3 ? versionInPath(`${request.origin.s3.path}/`) : null;
  if (version) {
    response.headers[VERSION_HEADER] = [{ key: VERSION_HEADER, value: version }];
  }
  return response;
}

/** viewer-response: name the version; pin it with cookies only for an override query. */
async function viewerResponse(event) {
  const { request, response } = event.Records[0].cf;
  const served = config.mode === 'origin-path' ? null : versionInPath(request.uri);
  const choice = chooseVersion(request, served);
  if (served) {
    response.headers[VERSION_HEADER] = [{ key: VERSION_HEADER, value: served }];
  }
  if (choice.setCookies.length > 0) {
    response.headers['set-cookie'] = choice.setCookies.map((value) => ({ key: 'Set-Cookie', value }));
  }
  return response;
}

const HANDLERS = {
  'viewer-request': viewerRequest,
  'origin-request': originRequest,
  'origin-response': originResponse,
  'viewer-response': viewerResponse,
};

/** One entry point for every event, so one function version serves every trigger. */
exports.handler = async (event) => HANDLERS[event.Records[0].cf.config.eventType](event);

// For the tests.
exports.viewerRequest = viewerRequest;
exports.viewerResponse = viewerResponse;
exports.releaseFile = releaseFile;
exports.activeVersion = activeVersion;
exports.configure = (overrides) => {
  config = { ...config, ...overrides };
};
exports.setParameterReader = (reader) => {
  readParameter = reader ?? defaultParameterReader;
  cached = { version: null, readAt: -Infinity };
};
