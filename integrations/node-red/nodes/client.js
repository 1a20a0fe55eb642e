// The engine's HTTP API as the nodes use it: one place that adds credentials, bounds
// answers and turns failures into errors that say whether the engine was reachable.
'use strict';

// Bodies the nodes read are small JSON documents; a lying or broken server cannot make the
// runtime buffer more than this.
const MAX_BODY = 8 << 20;

class EngineError extends Error {
    // status: the HTTP status, 0 when the engine did not answer (unreachable).
    constructor(message, status, body) {
        super(message);
        this.name = 'EngineError';
        this.status = status;
        this.body = body;
    }

    get unreachable() {
        return this.status === 0;
    }
}

// normaliseURL checks the engine's address once, when a config node is made.
function normaliseURL(raw) {
    let u;
    try {
        u = new URL(String(raw || '').trim());
    } catch (err) {
        throw new Error(`engine URL ${JSON.stringify(raw)}: ${err.message}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
        throw new Error(`engine URL ${JSON.stringify(raw)}: use http:// or https://`);
    }
    if (u.username || u.password) {
        throw new Error('engine URL: put the user and password in the credentials, not in the URL');
    }
    return u.origin + u.pathname.replace(/\/+$/, '');
}

// authHeader: a bearer token wins over a user and password; none for an open API.
function authHeader(creds) {
    creds = creds || {};
    if (creds.token) return 'Bearer ' + creds.token;
    if (creds.user) return 'Basic ' + Buffer.from(`${creds.user}:${creds.password || ''}`).toString('base64');
    return '';
}

async function readBody(res) {
    const reader = res.body && res.body.getReader();
    if (!reader) return '';
    const chunks = [];
    let size = 0;
    for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.length;
        if (size > MAX_BODY) {
            await reader.cancel().catch(() => {});
            throw new EngineError(`answer larger than ${MAX_BODY} bytes`, res.status);
        }
        chunks.push(value);
    }
    return Buffer.concat(chunks).toString('utf8');
}

// Client calls one engine. retries: how often a 503 (the API's request slots are full)
// is retried after its Retry-After before it counts as a failure.
class Client {
    constructor({ url, credentials, retries = 3, fetchImpl = fetch }) {
        this.url = normaliseURL(url);
        this.auth = authHeader(credentials);
        this.retries = retries;
        this.fetch = fetchImpl;
    }

    // request sends one call and returns the decoded JSON answer of a 2xx; anything else
    // throws an EngineError with the engine's own error text when it gave one.
    async request(method, path, { body, signal, timeoutMs = 30000 } = {}) {
        for (let attempt = 0; ; attempt++) {
            const headers = { Accept: 'application/json' };
            if (this.auth) headers.Authorization = this.auth;
            if (body !== undefined) headers['Content-Type'] = 'application/json';
            // One signal for the caller's cancel and the deadline (AbortSignal.any needs
            // Node.js 20.3; Node-RED 4 runs on 18).
            const ctl = new AbortController();
            let timedOut = false;
            const timer = setTimeout(() => {
                timedOut = true;
                ctl.abort();
            }, timeoutMs);
            const cancel = () => ctl.abort();
            if (signal) {
                if (signal.aborted) ctl.abort();
                signal.addEventListener('abort', cancel, { once: true });
            }
            let res;
            let text;
            try {
                try {
                    res = await this.fetch(this.url + path, {
                        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                        signal: ctl.signal, redirect: 'error',
                    });
                } catch (err) {
                    if (signal && signal.aborted) throw new EngineError(`${method} ${path}: cancelled`, 0);
                    const why = timedOut ? `no answer within ${timeoutMs} ms` : (err.cause && err.cause.message) || err.message;
                    throw new EngineError(`engine ${this.url} unreachable: ${why}`, 0);
                }
                try {
                    text = await readBody(res);
                } catch (err) {
                    if (err instanceof EngineError) throw err;
                    throw new EngineError(`engine ${this.url}: reading the answer to ${method} ${path}: ${timedOut ? `no answer within ${timeoutMs} ms` : err.message}`, 0);
                }
            } finally {
                clearTimeout(timer);
                if (signal) signal.removeEventListener('abort', cancel);
            }
            if (res.status === 503 && attempt < this.retries) {
                const wait = Math.min(Number(res.headers.get('retry-after')) || 1, 10) * 1000;
                await sleep(wait, signal);
                continue;
            }
            let json;
            try {
                json = text ? JSON.parse(text) : {};
            } catch {
                throw new EngineError(`${method} ${path}: ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`, res.status);
            }
            if (res.status < 200 || res.status > 299) {
                const msg = (json && json.error) || text.slice(0, 200) || res.statusText;
                throw new EngineError(`${method} ${path}: ${res.status}: ${msg}`, res.status, json);
            }
            return json;
        }
    }

    ready(opts) {
        return this.request('GET', '/readyz', opts);
    }

    functions(opts) {
        return this.request('GET', '/api/v1/functions', opts);
    }

    deploy(name, def, opts) {
        return this.request('PUT', '/api/v1/functions/' + encodeURIComponent(name), { ...opts, body: def });
    }

    // invoke runs ref; with opts.all (a `pick: all` target) the engine answers every
    // agent's result, {"results": [...]}, instead of the first one's.
    invoke(ref, req, opts = {}) {
        const { all, ...rest } = opts;
        return this.request('POST', '/api/v1/invoke/' + encodeURIComponent(ref) + (all ? '?all=true' : ''), { ...rest, body: req });
    }
}

function sleep(ms, signal) {
    return new Promise((resolve, reject) => {
        const t = setTimeout(resolve, ms);
        if (signal) {
            signal.addEventListener('abort', () => {
                clearTimeout(t);
                reject(new EngineError('cancelled', 0));
            }, { once: true });
        }
    });
}

module.exports = { Client, EngineError, normaliseURL, authHeader, MAX_BODY, sleep };
