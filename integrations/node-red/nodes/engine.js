// deviceless-engine: the config node holding the engine's HTTP URL and credentials (in
// Node-RED's credentials store, never in the flow), shared by the function and event
// nodes. It also owns the one event stream (GET /api/v1/events) the event nodes share, and
// the editor's admin endpoints (test connection, list functions).
'use strict';

const { Client, EngineError, authHeader, normaliseURL, sleep } = require('./client');

// The engine serves at most a few event streams; one per config node, shared.
const STREAM_RETRY_MS = 2000;
const MAX_FRAME = 1 << 20;

module.exports = function (RED) {
    function DevicelessEngineNode(config) {
        RED.nodes.createNode(this, config);
        const node = this;
        node.name = config.name;
        node.namespace = (config.namespace || '').trim();
        try {
            node.url = normaliseURL(config.url);
            node.client = new Client({ url: node.url, credentials: node.credentials });
        } catch (err) {
            node.configError = err.message;
            node.error(err.message);
        }
        node.stream = new EventStream(node);
        node.on('close', (done) => {
            node.stream.stop().then(() => done(), () => done());
        });
    }

    RED.nodes.registerType('deviceless-engine', DevicelessEngineNode, {
        credentials: {
            token: { type: 'password' },
            user: { type: 'text' },
            password: { type: 'password' },
        },
    });

    // The editor sends the form's values: an unsaved URL, and credentials it may not have
    // (a deployed node's password comes back as "__PWRD__"), which come from the store, but
    // only for the URL they were deployed with: an editor user must not be able to send a
    // stored token to an address of their choosing.
    function clientFor(body) {
        body = body || {};
        const deployed = body.id && RED.nodes.getNode(body.id);
        const url = body.url !== undefined && body.url !== '' ? body.url : deployed && deployed.url;
        const same = deployed && deployed.url && normaliseURL(url) === deployed.url;
        const stored = (same && RED.nodes.getCredentials(body.id)) || {};
        const pick = (k) => (body[k] === undefined || body[k] === '__PWRD__' ? stored[k] : body[k]);
        return new Client({ url, credentials: { token: pick('token'), user: pick('user'), password: pick('password') } });
    }

    RED.httpAdmin.post('/deviceless-engine/test', RED.auth.needsPermission('deviceless-engine.write'), async (req, res) => {
        let client;
        try {
            client = clientFor(req.body);
        } catch (err) {
            return res.json({ ok: false, error: err.message });
        }
        try {
            const ready = await client.ready({ timeoutMs: 5000 }).catch((err) => {
                // 503 "starting" is an answer: the engine is there.
                if (err instanceof EngineError && err.status === 503) return err.body || { status: 'starting' };
                throw err;
            });
            const fns = await client.functions({ timeoutMs: 5000 });
            res.json({ ok: true, status: ready.status, agents_online: ready.agents_online, functions: (fns.functions || []).length });
        } catch (err) {
            res.json({ ok: false, unreachable: !!err.unreachable, status: err.status, error: err.message });
        }
    });

    RED.httpAdmin.post('/deviceless-engine/functions', RED.auth.needsPermission('deviceless-engine.read'), async (req, res) => {
        try {
            const fns = await clientFor(req.body).functions({ timeoutMs: 5000 });
            res.json({ ok: true, functions: fns.functions || [] });
        } catch (err) {
            res.json({ ok: false, error: err.message, functions: [] });
        }
    });

    // EventStream reads the engine's server-sent events and hands each frame to the
    // subscribed event nodes; it runs only while one is subscribed and reconnects with the
    // engine's retry delay. onState(connected, error) keeps their status right.
    class EventStream {
        constructor(engine) {
            this.engine = engine;
            this.subs = new Set();
            this.abort = null;
            this.running = null;
            this.connected = false;
        }

        subscribe(sub) {
            this.subs.add(sub);
            sub.onState(this.connected, this.lastError);
            if (!this.running) this.running = this.run();
        }

        unsubscribe(sub) {
            this.subs.delete(sub);
            if (this.subs.size === 0) return this.stop();
            return Promise.resolve();
        }

        async stop() {
            if (this.abort) this.abort.abort();
            const r = this.running;
            this.running = null;
            if (r) await r;
        }

        state(connected, error) {
            this.connected = connected;
            this.lastError = error;
            for (const s of this.subs) s.onState(connected, error);
        }

        async run() {
            const engine = this.engine;
            const ctl = (this.abort = new AbortController());
            while (!ctl.signal.aborted && this.subs.size > 0) {
                try {
                    if (!engine.url) throw new Error(engine.configError || 'no engine URL');
                    await this.once(engine, ctl.signal);
                    if (!ctl.signal.aborted) this.state(false, 'the engine ended the event stream');
                } catch (err) {
                    if (ctl.signal.aborted) break;
                    this.state(false, err.message);
                }
                await sleep(STREAM_RETRY_MS, ctl.signal).catch(() => {});
            }
            this.state(false, undefined);
        }

        async once(engine, signal) {
            const headers = { Accept: 'text/event-stream' };
            const auth = authHeader(engine.credentials);
            if (auth) headers.Authorization = auth;
            let res;
            try {
                // The first connection skips the engine's backlog (results from before the
                // flow started); a reconnection takes it, to fill the gap, less what came
                // before the first connection (by the engine's clock) and what the nodes saw.
                const query = this.since === undefined ? '?backlog=false' : '';
                res = await fetch(engine.url + '/api/v1/events' + query, { headers, signal, redirect: 'error' });
            } catch (err) {
                throw new Error(`engine ${engine.url} unreachable: ${(err.cause && err.cause.message) || err.message}`);
            }
            if (res.status !== 200) {
                const text = await res.text().catch(() => '');
                let msg = text.slice(0, 200);
                try {
                    msg = JSON.parse(text).error || msg;
                } catch {}
                throw new Error(`GET /api/v1/events: ${res.status}: ${msg}`);
            }
            if (this.since === undefined) this.since = Date.parse(res.headers.get('date')) || 0;
            this.state(true, undefined);
            const decoder = new TextDecoder();
            let buf = '';
            // Cancel the read itself on stop: an aborted fetch does not always end a body
            // that is being read.
            const reader = res.body.getReader();
            const cancel = () => reader.cancel().catch(() => {});
            signal.addEventListener('abort', cancel, { once: true });
            try {
                for (;;) {
                    const { done, value: chunk } = await reader.read();
                    if (done || signal.aborted) return;
                    buf += decoder.decode(chunk, { stream: true });
                    if (buf.length > MAX_FRAME) throw new Error(`event stream: a frame over ${MAX_FRAME} bytes`);
                    let i;
                    while ((i = buf.indexOf('\n\n')) >= 0) {
                        const frame = buf.slice(0, i);
                        buf = buf.slice(i + 2);
                        this.dispatch(frame);
                    }
                }
            } finally {
                signal.removeEventListener('abort', cancel);
            }
        }

        dispatch(frame) {
            let event = 'message';
            const data = [];
            for (const line of frame.split('\n')) {
                if (line.startsWith('event:')) event = line.slice(6).trim();
                else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
            }
            if (data.length === 0) return;
            let value;
            try {
                value = JSON.parse(data.join('\n'));
            } catch {
                return; // not ours to judge; the engine writes JSON
            }
            if (event === 'loop' && value && Date.parse(value.finished_at) < this.since) return;
            for (const s of this.subs) s.onEvent(event, value);
        }
    }
};
