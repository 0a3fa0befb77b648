'use strict';
// A moto server (the local AWS the Rust tests use too) for the router's tests that read SSM and S3
// over HTTP; the SDK clients the router builds find it through the standard variables.

const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');

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

/**
 * A proxy on loopback in front of moto that records every request (method and path) and becomes
 * the endpoint the router's SDK clients find, so a test counts the AWS calls the router makes.
 */
async function countCalls(moto) {
  const target = new URL(moto.endpoint);
  const calls = [];
  const server = http.createServer((request, response) => {
    calls.push({ method: request.method, path: request.url });
    const headers = { ...request.headers, host: target.host };
    const upstream = http.request({ host: target.hostname, port: target.port, method: request.method, path: request.url, headers }, (answer) => {
      response.writeHead(answer.statusCode, answer.headers);
      answer.pipe(response);
    });
    upstream.on('error', (error) => response.destroy(error));
    request.pipe(upstream);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.env.AWS_ENDPOINT_URL = `http://127.0.0.1:${server.address().port}`;
  return {
    calls,
    stop: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

module.exports = { startMoto, countCalls };
