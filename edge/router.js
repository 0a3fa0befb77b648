'use strict';
// cutover's CloudFront router for Lambda@Edge (Node.js 20, no build step). It implements the edge
// contract that `cutover serve` implements in Rust (src/routing.rs); both run edge/vectors.json.
//
// The contract: the version is the override query (which also pins it with cookies; `clear`, in
// any case, drops them), else the override cookies, else the active version. An override is
// honoured only for a recorded release (else a header says why), and, with a baked
// `overrideSecret`, only when signed (`<version>~<expiry>~<base64url HMAC-SHA256>`). The file is
// chosen from the release's routing index (`<prefix>/_cutover/routes/<version>.json`, loaded once
// per version, a bounded number kept): the file the path names, `/dir/` -> `dir/index.html`,
// `/dir` -> 301 to `/dir/` (query kept), `/about` -> `about.html`, else `notFound` (`spa`, `404`
// or `auto`). `404.html` always answers with status 404 (set at origin-response, since
// viewer-response cannot change a status).
//
// With an SSM pointer (mode "ssm"), viewer-request decides and rewrites the URI to
// /<prefix>/<version>/<file> before the cache lookup (the version is in the cache key), or answers
// itself (redirect, 400, 404, 503) with the headers and cookies viewer-response would have added.
// With a CloudFront origin-path pointer (mode "origin-path"), the origin path names the active
// version, so origin-request decides. CloudFront runs no viewer-response on an answer of 400 or
// more, so a not-found page whose response must carry cookies or an override's headers is
// answered by the deciding handler itself, with the release's 404.html (up to MAX_PAGE_BYTES);
// the request for the not-found page reaches the origin without Range or conditions.
// viewer-response names the version and sets cookies; origin-response names the version, gives
// the not-found page its 404 and drops the index of a release whose listed file is missing. The
// secret is baked in by `cutover edge bundle` since Lambda@Edge has no environment variables; it
// is never logged.
//
// Fingerprinted files (`sharedAssets`, the `shared-assets` rule compiled by cutover into one
// expression) live once in the site's pool, /<prefix>/_shared/<path>: a release's pooled files
// (its index's `pooled`), and any fingerprinted path the release lacks (a page of an earlier
// release asking for its chunk after a newer one went live, when the response carries nothing
// beyond the version), are served from there.

const crypto = require('node:crypto');

let config = require('./config.json');

const VERSION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const VERSION_HEADER = 'x-cutover-version';
const OVERRIDE_HEADER = 'x-cutover-override';
const CLEAR = 'clear';
const INDEX_PAGE = 'index.html';
const NOT_FOUND_PAGE = '404.html';
const PRIVATE = 'private, no-cache';
/** Routing indexes kept in memory; a viewer function has 128 MB. */
const KEPT_INDEXES = 4;
/**
 * How long a kept index is trusted before it is read again: a release is immutable, but prune
 * may delete it. origin-response drops an index at once when a file it lists is missing, in the
 * container it runs in; this bounds every other container.
 */
const INDEX_TTL_MS = 60_000;
/**
 * The largest 404.html viewer-request answers with itself (a response Lambda@Edge generates at
 * viewer-request may hold 40 KB, headers included); a larger page becomes a plain 404 there.
 */
const MAX_PAGE_BYTES = 32 * 1024;
/** Request headers that would turn the not-found page into a 206 or a 304. */
const PARTIAL_OR_CONDITIONAL = ['range', 'if-range', 'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since'];
/** How long one SSM or S3 call may take, and how many tries a read gets. */
const CALL_TIMEOUT_MS = 1000;
const ATTEMPTS = 2;
/** What a 503 asks clients to wait (s), and how long a cold container waits before asking SSM again. */
const RETRY_AFTER_SECONDS = 5;

let readParameter = defaultParameterReader;
let readIndex = defaultIndexReader;
let readPage = defaultPageReader;
let active = { version: undefined, readAt: -Infinity };
let indexes = new Map();
let pages = new Map();

// Values a client can vary at will (`?override_build_number=`, a cookie, `pr-<n>`, a preview host,
// `?dpl=`, `x-deployment-id`) must not each cost a read: one found not to exist is remembered for `edge-cache` (a bounded LRU, so a flood of
// them never evicts a real release's index), and a container reads at most NEW_READS_PER_SECOND
// values it never saw; beyond that one is treated as unknown without a read (logged once a
// second). Framework pins, which any page's requests may carry, have a budget of their own, so a
// flood of them never makes a reviewer's override fall back to the live release. The active
// version is never capped. With `overrideSecret`, an unsigned or forged value is refused before
// any read.
const KEPT_UNKNOWN = 1024;
const NEW_READS_PER_SECOND = 16;
let unknown = new Map();
let newReads = freshBudgets();

/** The reads of values never seen spent this second: framework pins, and everything else. */
function freshBudgets() {
  return { framework: { second: -1, count: 0 }, override: { second: -1, count: 0 } };
}

/** Remembers a value found not to exist (a version or an alias), least recently used let go first. */
function rememberUnknown(key, now) {
  unknown.delete(key);
  unknown.set(key, now);
  while (unknown.size > KEPT_UNKNOWN) unknown.delete(unknown.keys().next().value);
}

/** Whether a value was found not to exist less than `edge-cache` ago. */
function knownUnknown(key, now) {
  const at = unknown.get(key);
  if (at === undefined) return false;
  if (now - at < config.cacheSeconds * 1000) return true;
  unknown.delete(key);
  return false;
}

/** Whether a value never seen may be read now (at most NEW_READS_PER_SECOND a second from `budget`). */
function mayReadNew(what, now, budget = 'override') {
  const second = Math.floor(now / 1000);
  if (second !== newReads[budget].second) newReads[budget] = { second, count: 0 };
  const spent = (newReads[budget].count += 1);
  if (spent === NEW_READS_PER_SECOND + 1) {
    const kind = budget === 'framework' ? 'framework pins' : 'new versions or aliases';
    console.warn(`cutover router: more than ${NEW_READS_PER_SECOND} ${kind} asked for this second; ${what} and the rest are treated as unknown unread`);
  }
  return spent <= NEW_READS_PER_SECOND;
}

function sdkClient(name, Client) {
  sdkClient[name] ??= new Client({
    region: config.region,
    maxAttempts: ATTEMPTS,
    requestHandler: { connectionTimeout: CALL_TIMEOUT_MS, requestTimeout: CALL_TIMEOUT_MS },
  });
  return sdkClient[name];
}

/** Reads the active version from SSM with the SDK the Lambda runtime provides. */
async function defaultParameterReader() {
  const { SSMClient, GetParameterCommand } = require('@aws-sdk/client-ssm');
  const out = await sdkClient('ssm', SSMClient).send(new GetParameterCommand({ Name: config.parameterName }));
  return out.Parameter.Value;
}

/** A release's file list: its routing index, else its record's files; null for no release. */
async function defaultIndexReader(version) {
  const { S3Client, GetObjectCommand } = require('@aws-sdk/client-s3');
  const s3 = sdkClient('s3', S3Client);
  const base = config.prefix ? `${config.prefix}/_cutover/` : '_cutover/';
  const pooledOf = (files) => Object.keys(files).filter((path) => files[path].place === 'pool');
  for (const [key, files] of [
    [`${base}routes/${version}.json`, (doc) => ({ files: doc.files, pooled: doc.pooled })],
    [`${base}releases/${version}.json`, (doc) => ({ files: Object.keys(doc.files), pooled: pooledOf(doc.files) })],
  ]) {
    let text;
    try {
      const out = await s3.send(new GetObjectCommand({ Bucket: config.bucket, Key: key }));
      text = await out.Body.transformToString();
    } catch (error) {
      if (error.name !== 'NoSuchKey' && error.name !== 'AccessDenied') throw error;
      continue;
    }
    const list = listOf(text, files);
    if (list !== null) return list;
    console.warn(`cutover router: ${key} is damaged; reading the next source of ${version}'s files`);
  }
  return null;
}

/** The files (and pooled files) a stored JSON document holds, or null when it is damaged. */
function listOf(text, files) {
  try {
    const list = files(JSON.parse(text));
    const paths = (a) => Array.isArray(a) && a.every((f) => typeof f === 'string');
    return paths(list.files) && paths(list.pooled ?? []) ? list : null;
  } catch {
    return null;
  }
}

/** A release's 404.html as text, or null when it is missing or larger than MAX_PAGE_BYTES. */
async function defaultPageReader(version) {
  const { S3Client, GetObjectCommand } = require('@aws-sdk/client-s3');
  const s3 = sdkClient('s3', S3Client);
  const key = versionDir(version).slice(1) + NOT_FOUND_PAGE;
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: config.bucket, Key: key, Range: `bytes=0-${MAX_PAGE_BYTES}` }));
    const body = Buffer.from(await out.Body.transformToByteArray());
    return body.length > MAX_PAGE_BYTES ? null : body.toString('utf8');
  } catch (error) {
    if (error.name !== 'NoSuchKey' && error.name !== 'AccessDenied' && error.name !== 'InvalidRange') throw error;
    return null;
  }
}

/** A promise that fails after `ms`, so a hung call never becomes a Lambda timeout. */
function withTimeout(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The active version: null when no release is active (the template's placeholder `-`), undefined
 * while it could never be read. An unreadable or invalid value keeps the last good one and is
 * logged; a container with none waits RETRY_AFTER_SECONDS before asking SSM again.
 */
async function activeVersion(now = Date.now()) {
  const wait = active.version === undefined ? RETRY_AFTER_SECONDS * 1000 : config.cacheSeconds * 1000;
  if (now - active.readAt < wait) {
    return active.version;
  }
  let value;
  let problem = null;
  for (let attempt = 1; attempt <= ATTEMPTS && value === undefined; attempt += 1) {
    try {
      value = await withTimeout(readParameter(), CALL_TIMEOUT_MS);
    } catch (error) {
      problem = `reading ${config.parameterName} failed: ${error.message || error}`;
    }
  }
  if (value === '-') {
    active = { version: null, readAt: now };
  } else if (typeof value === 'string' && VERSION.test(value)) {
    active = { version: value, readAt: now };
  } else {
    problem ??= `${config.parameterName} holds ${JSON.stringify(value)}, which is not a version`;
    console.warn(`cutover router: keeping ${active.version ?? 'no version'}: ${problem}`);
    active = { version: active.version, readAt: now };
  }
  return active.version;
}

/**
 * The routing index of a recorded release (a Set of its files), or null; a bounded LRU. A kept
 * index is read again after INDEX_TTL_MS (kept while that read fails), an unknown version after
 * `edge-cache`; a version never seen is read only within NEW_READS_PER_SECOND of its `budget`,
 * unless it is the `active` one (which no request names).
 */
async function releaseIndex(version, now = Date.now(), { active = false, budget = 'override' } = {}) {
  const kept = indexes.get(version);
  if (kept && now - kept.readAt < INDEX_TTL_MS) {
    indexes.delete(version);
    indexes.set(version, kept);
    return kept.files;
  }
  if (!kept && (knownUnknown(`version ${version}`, now) || (!active && !mayReadNew(version, now, budget)))) {
    return null;
  }
  let files = null;
  try {
    const list = await withTimeout(readIndex(version), CALL_TIMEOUT_MS * ATTEMPTS);
    files = indexSet(list);
  } catch (error) {
    console.warn(`cutover router: reading the routing index of ${version} failed: ${error.message || error}`);
    if (kept) indexes.set(version, { files: kept.files, readAt: now });
    return kept ? kept.files : null;
  }
  if (files === null) {
    indexes.delete(version);
    rememberUnknown(`version ${version}`, now);
    return null;
  }
  indexes.set(version, { files, readAt: now });
  while (indexes.size > KEPT_INDEXES) {
    indexes.delete(indexes.keys().next().value);
  }
  return files;
}

/** The first value of a query parameter; `&` first, since URLSearchParams would drop a leading `?`. */
function queryValue(querystring, name) {
  return new URLSearchParams(`&${querystring || ''}`).get(name);
}

// Header values lose only SP and HTAB (RFC 9110's OWS), and only ASCII letters change case, as
// in src/routing.rs: String#trim and #toLowerCase reach into Unicode.
const trim = (s) => s.replace(/^[ \t]+|[ \t]+$/g, '');
const asciiLower = (s) => s.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());

/** The first value of a cookie across every Cookie header, one pair of quotes taken off. */
function cookieValue(headers, name) {
  for (const header of (headers && headers.cookie) || []) {
    for (const pair of header.value.split(';')) {
      const at = pair.indexOf('=');
      if (at >= 0 && trim(pair.slice(0, at)) === name) {
        const value = trim(pair.slice(at + 1));
        return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
      }
    }
  }
  return null;
}

/** The HMAC of `<prefix>/<version>~<expiry>`: the site is signed too (see src/routing.rs). */
function signature(version, expiry) {
  return crypto.createHmac('sha256', config.overrideSecret).update(`${config.prefix}/${version}~${expiry}`).digest('base64url');
}

/** The version an override value names, or the reason it is refused. */
function check(value, now) {
  if (!config.overrideSecret) {
    return VERSION.test(value) ? { version: value } : { refused: 'invalid' };
  }
  const parts = value.split('~');
  if (parts.length < 3) {
    return { refused: VERSION.test(value) ? 'unsigned' : 'invalid' };
  }
  const [sig, expiry] = [parts.pop(), parts.pop()];
  const version = parts.join('~');
  if (!/^[0-9]{1,12}$/.test(expiry) || !VERSION.test(version)) {
    return { refused: 'invalid' };
  }
  // Compared as text: Buffer.from(sig, 'base64url') ignores a last character's unused bits (and
  // stray characters), so four texts would pass for each signature where Rust's strict decoding
  // accepts one.
  const given = Buffer.from(sig);
  const expected = Buffer.from(signature(version, expiry));
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
    return { refused: 'bad-signature' };
  }
  return Math.floor(now / 1000) > Number(expiry) ? { refused: 'expired' } : { version };
}

/** What a request asks for: { kind: 'active' | 'clear' | 'pin' | 'refused', ... }. */
function ask(request, now = Date.now()) {
  const asked = queryValue(request.querystring, config.overrideQuery);
  let value = asked;
  let source = 'query';
  if (asked === null) {
    const pinned = cookieValue(request.headers, config.versionCookie);
    if (cookieValue(request.headers, config.overrideCookie) !== 'true' || pinned === null) {
      return { kind: 'active' };
    }
    [value, source] = [pinned, 'cookie'];
  } else if (asked.toLowerCase() === CLEAR) {
    return { kind: 'clear' };
  }
  const checked = check(value, now);
  return checked.refused ? { kind: 'refused', why: checked.refused } : { kind: 'pin', version: checked.version, source, value };
}

// Preview aliases: an override naming `pr-<n>` (query or cookie, signed like any other), or, with
// a baked `previewDomain` and no `overrideSecret`, the host `pr-<n>.<previewDomain>`, serves the
// pull request's newest preview. The alias lives beside the active version: in ssm mode the
// sibling parameter `<parameterName>-pr-<n>`, in origin-path mode the object
// `<prefix>/_cutover/aliases/pr-<n>.json` ({"version": ...}); it is trusted for `cacheSeconds`, as
// the active version is, and an unreadable one keeps the last good answer. `cutover serve` does
// the same (src/serve/aliases.rs).
const ALIAS = /^pr-[1-9][0-9]{0,8}$/;
/** A preview release's version, `pr-<n>-<run>` (is_preview in src/pull_request.rs). */
const PREVIEW_VERSION = /^pr-[1-9][0-9]{0,8}-./;
const KEPT_ALIASES = 256;
let readAlias = defaultAliasReader;
let aliases = new Map();

/** The preview an alias names, from SSM or S3; null when there is none. */
async function defaultAliasReader(alias) {
  if (config.mode === 'origin-path') {
    const { S3Client, GetObjectCommand } = require('@aws-sdk/client-s3');
    const base = config.prefix ? `${config.prefix}/_cutover/` : '_cutover/';
    try {
      const out = await sdkClient('s3', S3Client).send(
        new GetObjectCommand({ Bucket: config.bucket, Key: `${base}aliases/${alias}.json` }),
      );
      return JSON.parse(await out.Body.transformToString()).version;
    } catch (error) {
      if (error.name === 'NoSuchKey' || error.name === 'AccessDenied') return null;
      throw error;
    }
  }
  const { SSMClient, GetParameterCommand } = require('@aws-sdk/client-ssm');
  try {
    const out = await sdkClient('ssm', SSMClient).send(new GetParameterCommand({ Name: `${config.parameterName}-${alias}` }));
    return out.Parameter.Value;
  } catch (error) {
    if (error.name === 'ParameterNotFound') return null;
    throw error;
  }
}

/**
 * The version an alias names (null: none), cached like the active version, the least recently
 * used let go first; an alias never seen is read only within NEW_READS_PER_SECOND.
 */
async function aliasTarget(alias, now = Date.now()) {
  const kept = aliases.get(alias);
  if (kept && now - kept.readAt < config.cacheSeconds * 1000) {
    aliases.delete(alias);
    aliases.set(alias, kept);
    return kept.version;
  }
  if (!kept && !mayReadNew(alias, now)) {
    return null;
  }
  let version = kept ? kept.version : null;
  try {
    const value = await withTimeout(readAlias(alias), CALL_TIMEOUT_MS * ATTEMPTS);
    // Only a preview of the alias's own pull request (`pr-<n>-<run>`): never a release, another's.
    version = typeof value === 'string' && VERSION.test(value) && value.startsWith(`${alias}-`) && value.length > alias.length + 1 ? value : null;
  } catch (error) {
    console.warn(`cutover router: reading the alias ${alias} failed: ${error.message || error}`);
  }
  aliases.delete(alias);
  aliases.set(alias, { version, readAt: now });
  while (aliases.size > KEPT_ALIASES) aliases.delete(aliases.keys().next().value);
  return version;
}

/**
 * What the Host header is to the preview hosts: undefined when it is not under `previewDomain`
 * (the domain itself neither), else the alias it names (null: none), only as exactly
 * `pr-<n>.<previewDomain>` with no port or a valid one (1 to 5 digits, at most 65535). Under the
 * domain is told from the name before the first `:`, in any case, trailing dots ignored, as in
 * preview_host (src/serve/aliases.rs).
 */
function previewHost(headers) {
  if (!config.previewDomain) return undefined;
  const host = (((headers && headers.host) || [])[0] || {}).value;
  if (typeof host !== 'string') return undefined;
  const colon = host.indexOf(':');
  const [name, port] = colon < 0 ? [host, null] : [host.slice(0, colon), host.slice(colon + 1)];
  if (!asciiLower(name.replace(/\.+$/, '')).endsWith(`.${asciiLower(config.previewDomain)}`)) return undefined;
  if (port !== null && !(/^[0-9]{1,5}$/.test(port) && Number(port) <= 65535)) return null;
  const suffix = `.${config.previewDomain}`;
  const label = name.endsWith(suffix) ? name.slice(0, -suffix.length) : null;
  return label !== null && ALIAS.test(label) ? label : null;
}

/** The body of a preview host's 404, as NoPreview::message in src/routing.rs says it. */
const NO_PREVIEW = {
  host: 'no preview at this host: preview hosts are pr-<n> under the preview domain',
  signed: 'preview hosts are off with override-secret: use the signed preview link',
  missing: (alias) => `no preview for pull request ${alias.slice('pr-'.length)}`,
  cleared: 'preview cookies cleared: a preview host shows only previews, never the live site',
  // The router's own: `cutover serve` has no pointer style.
  style: 'preview hosts need an ssm: pointer: use the preview link (?override_build_number=pr-<n>)',
};

/**
 * The answer of a request to a preview host that shows no preview, or null. The clear link
 * clears the cookies there and shows nothing. Hosts pin only in ssm mode, where viewer-request
 * puts the version in the URI before the cache lookup: in origin-path mode origin-request decides
 * after it, and the host is not in the cache key (an S3 origin cannot be sent the viewer's Host),
 * so a preview would be cached as the live page; with `overrideSecret` a host carries no
 * signature.
 */
function hostRefusal(asked, host) {
  if (host === undefined) return null;
  if (asked.kind === 'clear') return { kind: 'noPreview', why: NO_PREVIEW.cleared, clear: true };
  if (config.mode !== 'ssm') return { kind: 'noPreview', why: NO_PREVIEW.style };
  if (config.overrideSecret) return { kind: 'noPreview', why: NO_PREVIEW.signed };
  if (host === null) return { kind: 'noPreview', why: NO_PREVIEW.host };
  return null;
}

/**
 * What a request asks for once aliases are resolved; the cookie keeps the alias, so pins follow
 * pushes. A host under the preview domain is a preview or a 404 (`noPreview`), never the live site.
 */
async function aliased(asked, request, now = Date.now(), target = aliasTarget) {
  const host = previewHost(request.headers);
  const refused = hostRefusal(asked, host);
  if (refused !== null) return refused;
  // An alias naming no preview is answered without a lookup: no release is ever named `pr-<n>`.
  if (host) {
    const version = await target(host, now);
    if (version === null) return { kind: 'noPreview', why: NO_PREVIEW.missing(host) };
    return { kind: 'pin', version, source: 'host', value: host };
  }
  if (asked.kind === 'pin' && ALIAS.test(asked.version)) {
    const version = await target(asked.version, now);
    return version === null ? { kind: 'refused', why: 'unknown-version' } : { ...asked, version };
  }
  return asked;
}

// Framework pins (see framework_pin in src/routing.rs): `?dpl=<version>` (first) or the header
// `x-deployment-id`, as Next.js sends with its `deploymentId`, serve a request from that stored
// version; never a navigation (`Sec-Fetch-Dest`) nor a page-shaped path, never with a cookie,
// and only for a file the pinned release holds at that very path (decide).
const PIN_QUERY = 'dpl';
const PIN_HEADER = 'x-deployment-id';
const NAVIGATIONS = ['document', 'iframe', 'frame', 'embed', 'object'];

/** The version a framework pins this request, whose decoded path is `path`, to, or null. */
function frameworkPin(request, path) {
  const first = (name) => ((request.headers || {})[name] || [])[0]?.value ?? null;
  const dest = first('sec-fetch-dest');
  if ((dest !== null && NAVIGATIONS.includes(asciiLower(trim(dest)))) || pageShaped(path)) {
    return null;
  }
  const header = first(PIN_HEADER);
  const value = queryValue(request.querystring, PIN_QUERY) ?? (header === null ? null : trim(header));
  return value !== null && VERSION.test(value) ? value : null;
}

/** A decoded path that may answer with a page: the root, a directory, no extension, `.html`, `.htm`; a bad path (null) too. */
function pageShaped(path) {
  if (path === null) return true;
  const last = path.slice(path.lastIndexOf('/') + 1).toLowerCase();
  return !hasExtension(last) || last.endsWith('.html') || last.endsWith('.htm');
}

function hasExtension(path) {
  const last = path.slice(path.lastIndexOf('/') + 1);
  return last.indexOf('.', 1) > 0;
}

/** The release-relative path a request path names, or null (see decode_path in src/routing.rs). */
function decodePath(uri) {
  if (!uri.startsWith('/') || /%(?![0-9A-Fa-f]{2})/.test(uri)) {
    return null;
  }
  let path;
  try {
    path = decodeURIComponent(uri.slice(1));
  } catch {
    return null;
  }
  const segments = path.split('/');
  const last = segments.pop();
  const bad = (s) => s === '' || s === '.' || s === '..';
  if (path.includes('\0') || segments.some(bad) || last === '.' || last === '..') {
    return null;
  }
  return path;
}

/** Static-host semantics for a request path `uri` decoded as `path`: { file, status } | { redirect } | { notFound } | { badPath }. */
function resolve(uri, path, querystring, files) {
  if (path === null) {
    return { badPath: true };
  }
  const file = (name) => ({ file: name, status: name === NOT_FOUND_PAGE ? 404 : 200 });
  if (path === '' || path.endsWith('/')) {
    if (files.has(path + INDEX_PAGE)) return file(path + INDEX_PAGE);
  } else {
    if (files.has(path)) return file(path);
    if (files.has(`${path}/${INDEX_PAGE}`)) return { redirect: `${uri}/${querystring ? `?${querystring}` : ''}` };
    if (files.has(`${path}.html`)) return file(`${path}.html`);
  }
  const hasPage = files.has(NOT_FOUND_PAGE);
  const spa = config.notFound === 'spa' || (config.notFound !== '404' && !hasPage);
  if (spa && !hasExtension(path) && files.has(INDEX_PAGE)) return file(INDEX_PAGE);
  if (hasPage) return file(NOT_FOUND_PAGE);
  return { notFound: true };
}

/** The whole decision for one request, given the active version (null: none, undefined: unreadable). */
async function decide(request, activeOf) {
  const path = decodePath(request.uri);
  let asked = await aliased(ask(request), request);
  const pin = asked.kind === 'active' ? frameworkPin(request, path) : null;
  if (pin !== null) {
    asked = { kind: 'pin', version: pin, source: 'framework', value: pin };
  }
  const headers = {};
  let setCookies = [];
  let chosen = null;
  if (asked.kind === 'noPreview') {
    return noPreview(asked);
  } else if (asked.kind === 'clear') {
    setCookies = clearingCookies();
  } else if (asked.kind === 'refused') {
    headers[OVERRIDE_HEADER] = asked.why;
  } else if (asked.kind === 'pin') {
    // Every version a request names (override, cookie, alias, framework pin) is looked up here,
    // within the cap on values never seen; one found unknown, or over the cap, is no release.
    const files = await releaseIndex(asked.version, Date.now(), { budget: asked.source === 'framework' ? 'framework' : 'override' });
    if (asked.source === 'framework') {
      // A pin to a version not stored is no override: the active version answers, silently. So
      // does one whose path the pinned release does not hold as a file of its own (see
      // route in src/routing.rs): it would resolve there to a page or another release's chunk.
      if (files !== null && files.has(path)) chosen = { version: asked.version, files, source: 'framework' };
    } else if (files === null && asked.source === 'host') {
      return noPreview({ why: NO_PREVIEW.missing(asked.value) });
    } else if (files === null) {
      headers[OVERRIDE_HEADER] = 'unknown-version';
    } else {
      if (asked.source === 'query') {
        setCookies = [
          `${config.versionCookie}=${asked.value}; Path=/; SameSite=Lax`,
          `${config.overrideCookie}=true; Path=/; SameSite=Lax`,
        ];
      }
      headers['x-robots-tag'] = 'noindex';
      chosen = { version: asked.version, files, source: asked.source };
    }
  }
  let outcome;
  if (chosen === null) {
    const version = await activeOf();
    if (version === undefined) {
      outcome = { unavailable: true };
    } else if (version === null) {
      outcome = { noRelease: true };
    } else {
      chosen = { version, files: (await releaseIndex(version, Date.now(), { active: true })) ?? new Set(), source: 'active' };
    }
  }
  // Only a response that carries nothing beyond its version may come from the pool: any other
  // 404 must be answered by this handler (see answersNotFoundItself), so a path the release
  // lacks gets the release's own not-found answer.
  const plain = Object.keys(headers).length === 0 && setCookies.length === 0;
  if (chosen !== null) {
    outcome = (plain ? fromPool(path, chosen.files) : null) ?? resolve(request.uri, path, request.querystring, chosen.files);
    outcome.pooled = outcome.file !== undefined && inPool(outcome.file, chosen.files);
    headers[VERSION_HEADER] = chosen.version;
  }
  if ((chosen && chosen.source !== 'active' && chosen.source !== 'framework') || setCookies.length > 0) {
    headers['cache-control'] = PRIVATE;
  }
  return { version: chosen && chosen.version, outcome, headers, setCookies };
}

/**
 * The decision for a preview host that shows no preview: never the live site, which wildcard DNS
 * would make an indexable copy of (Outcome::NoPreview in src/routing.rs).
 */
function noPreview({ why, clear = false }) {
  return { version: null, outcome: { noPreview: why }, headers: { 'x-robots-tag': 'noindex' }, setCookies: clear ? clearingCookies() : [] };
}

/** The `Set-Cookie` values of the clear link. */
function clearingCookies() {
  return [config.versionCookie, config.overrideCookie].map((n) => `${n}=; Path=/; Max-Age=0`);
}

// ---- The shared pool -------------------------------------------------------------------------

/**
 * A release's index as a Set of its files, with `pooled` (a Set of those stored in the pool); the
 * reader gives `{ files, pooled }`, or a bare list (nothing pooled), or null for no release.
 */
function indexSet(list) {
  const files = Array.isArray(list) ? list : list && Array.isArray(list.files) ? list.files : null;
  if (files === null) return null;
  const set = new Set(files);
  set.pooled = new Set(Array.isArray(list.pooled) ? list.pooled : []);
  return set;
}

let sharedRule = { source: undefined, regex: null };

/** Whether a release-relative path is fingerprinted by the baked rule (see src/shared_assets.rs). */
function fingerprinted(path) {
  if (sharedRule.source !== config.sharedAssets) {
    sharedRule = { source: config.sharedAssets, regex: config.sharedAssets ? new RegExp(config.sharedAssets, 'u') : null };
  }
  return sharedRule.regex !== null && sharedRule.regex.test(path);
}

/** A fingerprinted (decoded) path the release lacks: another release's, served from the pool. */
function fromPool(path, files) {
  return path !== null && !files.has(path) && fingerprinted(path) ? { file: path, status: 200 } : null;
}

/** Whether a file the decision serves lives in the pool (see RouteIndex::in_pool). */
function inPool(file, files) {
  return (files.pooled !== undefined && files.pooled.has(file)) || (!files.has(file) && fingerprinted(file));
}

function sharedDir() {
  return config.prefix ? `/${config.prefix}/_shared/` : '/_shared/';
}

/** Drops what is kept of a version whose listed file the origin does not have (it was pruned). */
function forget(version) {
  if (indexes.delete(version)) {
    console.warn(`cutover router: a file of ${version} is missing at the origin; reading its routing index again`);
  }
  pages.delete(version);
}

/** A release's 404.html for viewer-request to answer with (cached per version, bounded), or null. */
async function notFoundPage(version) {
  if (pages.has(version)) return pages.get(version);
  let page = null;
  try {
    page = await withTimeout(readPage(version), CALL_TIMEOUT_MS * ATTEMPTS);
  } catch (error) {
    console.warn(`cutover router: reading the 404 page of ${version} failed: ${error.message || error}`);
    return null;
  }
  pages.set(version, page);
  while (pages.size > KEPT_INDEXES) {
    pages.delete(pages.keys().next().value);
  }
  return page;
}

/**
 * Whether the decision serves the not-found page on a response that must carry more than the
 * version (cookies, an override's headers): CloudFront runs no viewer-response on a 404 from the
 * origin, so the router answers such a request itself.
 */
function answersNotFoundItself(decision) {
  return decision.outcome.status === 404 && carriesMoreThanVersion(decision);
}

/**
 * Whether a response must carry more than its version (cookies, an override's headers): it
 * ignores Range and conditions too, since CloudFront runs no viewer-response on the 416 or 412
 * the origin would give (see Route::carries_more_than_version in src/routing.rs).
 */
function carriesMoreThanVersion(decision) {
  return Object.keys(decision.headers).some((name) => name !== VERSION_HEADER) || decision.setCookies.length > 0;
}

const PLAIN_TEXT = 'text/plain; charset=utf-8';

/** The headers of an answer the router makes itself, or turns into a plain 404: no cache keeps it. */
function uncached(contentType) {
  return {
    'content-type': [{ key: 'Content-Type', value: contentType }],
    'cache-control': [{ key: 'Cache-Control', value: 'no-store' }],
  };
}

/** The not-found page generated by the router, with the decision's headers and cookies. */
async function notFoundResponse(decision) {
  const page = await notFoundPage(decision.version);
  const headers = uncached(page === null ? PLAIN_TEXT : 'text/html; charset=utf-8');
  const body = page === null ? 'not found\n' : page;
  return decorate({ status: '404', statusDescription: 'Not Found', headers, body }, decision);
}

/**
 * Readies a request for the origin: the not-found page answers 404 however it is asked for, so
 * a range or a condition never turns it into a 206 or a 304; and a response that must carry more
 * than its version ignores them, so it is never a 416 or 412 that skips viewer-response.
 */
function toOrigin(request, decision) {
  if (decision.outcome.status === 404 || carriesMoreThanVersion(decision)) {
    stripPartialOrConditional(request);
  }
  return request;
}

function stripPartialOrConditional(request) {
  for (const name of PARTIAL_OR_CONDITIONAL) delete request.headers[name];
}

function encodePath(path) {
  return path.split('/').map(encodeURIComponent).join('/');
}

function versionDir(version) {
  return config.prefix ? `/${config.prefix}/${version}/` : `/${version}/`;
}

/** Puts the decision's headers and cookies on a CloudFront response. */
function decorate(response, decision) {
  for (const [name, value] of Object.entries(decision.headers)) {
    response.headers[name] = [{ key: name, value }];
  }
  if (decision.setCookies.length > 0) {
    response.headers['set-cookie'] = decision.setCookies.map((value) => ({ key: 'Set-Cookie', value }));
  }
  return response;
}

/** The response CloudFront gets from the function itself for anything but an existing file. */
function generated(decision) {
  const { outcome } = decision;
  const [status, description, body] = outcome.redirect
    ? [301, 'Moved Permanently', 'moved\n']
    : outcome.badPath
      ? [400, 'Bad Request', 'bad path\n']
      : outcome.unavailable
        ? [503, 'Service Unavailable', 'the active version cannot be read yet\n']
        : outcome.noRelease
          ? [404, 'Not Found', 'no release is active\n']
          : outcome.noPreview
            ? [404, 'Not Found', `${outcome.noPreview}\n`]
            : [404, 'Not Found', 'not found\n'];
  const headers = uncached(PLAIN_TEXT);
  if (outcome.redirect) headers.location = [{ key: 'Location', value: outcome.redirect }];
  if (outcome.unavailable) headers['retry-after'] = [{ key: 'Retry-After', value: String(RETRY_AFTER_SECONDS) }];
  return decorate({ status: String(status), statusDescription: description, headers, body }, decision);
}

/**
 * viewer-request: in ssm mode, decide and rewrite the URI under the version (or answer). In
 * origin-path mode only origin-request knows the active version, so it decides everything, a bad
 * path too: answered here, a 400 would miss the version and `clear`'s cookies.
 */
async function viewerRequest(event) {
  const request = event.Records[0].cf.request;
  if (config.mode === 'origin-path') {
    // Only this handler sees the viewer's Host: a preview host is answered here, never cached as
    // the live page.
    const asked = ask(request);
    const refused = hostRefusal(asked, previewHost(request.headers));
    if (refused !== null) return generated(noPreview(refused));
    // CloudFront's cache answers a range before origin-request decides: a request whose
    // response will carry more than its version (any override or `clear`) must not ask for one.
    if (asked.kind !== 'active') stripPartialOrConditional(request);
    return request;
  }
  const decision = await decide(request, () => activeVersion());
  if (decision.outcome.file === undefined) {
    return generated(decision);
  }
  if (answersNotFoundItself(decision)) {
    return notFoundResponse(decision);
  }
  const { file, pooled } = decision.outcome;
  request.uri = (pooled ? sharedDir() : versionDir(decision.version)) + encodePath(file);
  if (pooled) {
    // One cached object for every version: viewer-response names the version from this header.
    request.headers[VERSION_HEADER] = [{ key: VERSION_HEADER, value: decision.version }];
  }
  return toOrigin(request, decision);
}

/** The version a `/<prefix>/<version>/...` path (a URI or an origin path) names, or null. */
function versionInPath(path) {
  const dir = config.prefix ? `/${config.prefix}/` : '/';
  const rest = path.startsWith(dir) ? path.slice(dir.length) : '';
  const version = rest.split('/')[0];
  return VERSION.test(version) ? version : null;
}

/** origin-request (origin-path mode): decide with the origin path's version as the active one. */
async function originRequest(event) {
  const request = event.Records[0].cf.request;
  const s3 = request.origin && request.origin.s3;
  const decision = await decide(request, async () => (s3 ? versionInPath(`${s3.path}/`) : null));
  if (decision.outcome.file === undefined) {
    return generated(decision);
  }
  if (answersNotFoundItself(decision)) {
    return notFoundResponse(decision);
  }
  const { file, pooled } = decision.outcome;
  if (s3) s3.path = (pooled ? sharedDir() : versionDir(decision.version)).replace(/\/$/, '');
  if (pooled) {
    // origin-response names the version of a pooled file from this header, as nothing in its path does.
    request.headers[VERSION_HEADER] = [{ key: VERSION_HEADER, value: decision.version }];
  }
  request.uri = '/' + encodePath(file);
  return toOrigin(request, decision);
}

/**
 * origin-response: name the version, give the not-found page its 404 (cached with it), answer a
 * missing object with a plain uncached 404, and drop the index of a version whose listed file the
 * origin does not have (S3 answers 403 without s3:ListBucket).
 */
async function originResponse(event) {
  const { request, response } = event.Records[0].cf;
  const s3 = request.origin && request.origin.s3;
  const full = config.mode === 'origin-path' && s3 ? `${s3.path}${request.uri}` : request.uri;
  const pooled = full.startsWith(sharedDir());
  const version = versionInPath(full) ?? (pooled ? ((request.headers[VERSION_HEADER] || [])[0] || {}).value || null : null);
  if (response.status === '403' || response.status === '404') {
    // A missing object reads as 403 through the origin access control (no ListBucket). Only a
    // file the version's index lists says the release was pruned: a pool miss for a path it does
    // not list (another release's chunk) says nothing about it, and must not cost a re-read.
    const file = fileOf(full, pooled ? sharedDir() : version && versionDir(version));
    if (version && file !== null && (indexes.get(version)?.files.has(file) ?? false)) forget(version);
    missing(response);
  }
  if (version) {
    response.headers[VERSION_HEADER] = [{ key: VERSION_HEADER, value: version }];
    if (response.status === '200' && full === versionDir(version) + NOT_FOUND_PAGE) {
      Object.assign(response, { status: '404', statusDescription: 'Not Found' });
    }
    // Every answer of a preview says noindex, its errors too (viewer-response runs on none of
    // 400 or more, such as a request racing the preview's close); never a cached pooled object,
    // which every version shares.
    if (PREVIEW_VERSION.test(version) && (!pooled || response.status === '404')) {
      response.headers['x-robots-tag'] = [{ key: 'X-Robots-Tag', value: 'noindex' }];
    }
  }
  return response;
}

/** The release-relative file a URI under `dir` names, or null. */
function fileOf(full, dir) {
  if (!dir || !full.startsWith(dir)) return null;
  try {
    return decodeURIComponent(full.slice(dir.length));
  } catch {
    return null;
  }
}

/**
 * Makes the origin's 403 or 404 for a missing object the plain `not found` that `cutover serve`
 * answers: never S3's error document, and `no-store`, which keeps CloudFront from caching a 404
 * (so a pooled path's answer, shared by every version, never carries another visitor's version).
 */
function missing(response) {
  Object.assign(response, { status: '404', statusDescription: 'Not Found', body: 'not found\n' });
  Object.assign(response.headers, uncached(PLAIN_TEXT));
}

/** viewer-response: the decision's headers and cookies on a response that came from the origin or cache. */
async function viewerResponse(event) {
  const { request, response } = event.Records[0].cf;
  const served =
    config.mode === 'origin-path'
      ? ((response.headers[VERSION_HEADER] || [])[0] || {}).value || null
      : versionInPath(request.uri) ??
        (request.uri.startsWith(sharedDir()) ? ((request.headers[VERSION_HEADER] || [])[0] || {}).value || null : null);
  // The alias was resolved before (viewer-request, or origin-request in origin-path mode) to what
  // is served: a second lookup could name a push made since, so the alias's own preview stands.
  const resolved = (alias, now) => (served && served.startsWith(`${alias}-`) ? served : aliasTarget(alias, now));
  const asked = await aliased(ask(request), request, Date.now(), resolved);
  const decision = { headers: {}, setCookies: [] };
  if (asked.kind === 'clear') {
    decision.setCookies = clearingCookies();
  } else if (asked.kind === 'refused') {
    decision.headers[OVERRIDE_HEADER] = asked.why;
  } else if (asked.kind === 'pin' && asked.source !== 'host' && asked.version !== served) {
    decision.headers[OVERRIDE_HEADER] = 'unknown-version';
  } else if (asked.kind === 'pin') {
    // A preview host's answer is noindex whatever served it.
    decision.headers['x-robots-tag'] = 'noindex';
    if (asked.source === 'query') {
      decision.setCookies = [
        `${config.versionCookie}=${asked.value}; Path=/; SameSite=Lax`,
        `${config.overrideCookie}=true; Path=/; SameSite=Lax`,
      ];
    }
  }
  if (served) decision.headers[VERSION_HEADER] = served;
  if ((asked.kind === 'pin' && asked.version === served) || decision.setCookies.length > 0) {
    decision.headers['cache-control'] = PRIVATE;
  }
  return decorate(response, decision);
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
exports.decide = decide;
exports.decodePath = decodePath;
exports.activeVersion = activeVersion;
exports.releaseIndex = releaseIndex;
exports.notFoundPage = notFoundPage;
exports.aliasTarget = aliasTarget;
exports.configure = (overrides) => {
  config = { ...config, ...overrides };
  indexes = new Map();
  pages = new Map();
  aliases = new Map();
  unknown = new Map();
  newReads = freshBudgets();
};
exports.setParameterReader = (reader) => {
  readParameter = reader ?? defaultParameterReader;
  active = { version: undefined, readAt: -Infinity };
};
exports.setAliasReader = (reader) => {
  readAlias = reader ?? defaultAliasReader;
  aliases = new Map();
};
exports.setIndexReader = (reader) => {
  readIndex = reader ?? defaultIndexReader;
  indexes = new Map();
  unknown = new Map();
  newReads = freshBudgets();
};
exports.setPageReader = (reader) => {
  readPage = reader ?? defaultPageReader;
  pages = new Map();
};
