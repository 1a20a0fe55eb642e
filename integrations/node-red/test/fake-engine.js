// A stand-in for the engine's HTTP API in the unit tests: it answers as the engine does
// (docs/functions.md) and records what it was asked. The end-to-end tests in the
// repository's test/ run the nodes against the real engine.
'use strict';

const http = require('node:http');
const path = require('node:path');
const os = require('node:os');

// noderedPath is the Node-RED the project installs (scripts/setup-nodered.sh).
function noderedPath() {
    const dir = process.env.DEVICELESS_NODERED ||
        path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'deviceless', 'node-red-4.1.15');
    const pkg = path.join(dir, 'node_modules', 'node-red');
    try {
        return require.resolve(pkg);
    } catch (err) {
        throw new Error(`Node-RED 4.1.15 is not installed in ${dir} (DEVICELESS_NODERED): run go tool task setup`);
    }
}

async function startEngine(handle) {
    const calls = [];
    const streams = new Set();
    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            const call = { method: req.method, url: req.url, auth: req.headers.authorization, body: text ? JSON.parse(text) : undefined };
            calls.push(call);
            if (req.url.startsWith('/api/v1/events')) {
                res.writeHead(200, { 'Content-Type': 'text/event-stream' });
                res.write('retry: 2000\n: deviceless event stream\n\n');
                streams.add(res);
                res.on('close', () => streams.delete(res));
                return;
            }
            const answer = (code, body, headers = {}) => {
                res.writeHead(code, { 'Content-Type': 'application/json', ...headers });
                res.end(JSON.stringify(body));
            };
            // answer.raw sends a body as it is (not JSON): an engine, or something in
            // between, answering nonsense.
            answer.raw = (code, text) => {
                res.writeHead(code, { 'Content-Type': 'text/html' });
                res.end(text);
            };
            Promise.resolve(handle(call, answer)).catch((err) => answer(500, { error: err.message }));
        });
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
        url: `http://127.0.0.1:${server.address().port}`,
        calls,
        streams,
        emit(event, data) {
            for (const s of streams) s.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
        },
        close() {
            for (const s of streams) s.destroy();
            server.closeAllConnections();
            return new Promise((resolve) => server.close(resolve));
        },
    };
}

// waitFor polls cond until it holds (tests wait for what they can observe, never a fixed time).
async function waitFor(what, cond, timeoutMs = 10000) {
    const end = Date.now() + timeoutMs;
    for (;;) {
        const v = await cond();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 10));
    }
}

module.exports = { startEngine, noderedPath, waitFor };
