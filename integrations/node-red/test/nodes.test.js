// Unit tests of the three nodes in a Node-RED runtime (node-red-node-test-helper) against
// a stand-in engine (fake-engine.js): messages in, results out, errors, status, credentials.
'use strict';

const { test, describe, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const helper = require('node-red-node-test-helper');
const { startEngine, noderedPath, waitFor } = require('./fake-engine');
const engineNode = require('../nodes/engine.js');
const functionNode = require('../nodes/function.js');
const eventNode = require('../nodes/event.js');

helper.init(noderedPath());
const nodes = [engineNode, functionNode, eventNode];

const PY = 'import json,sys\nprint(json.dumps(json.load(sys.stdin)["args"]))\n';

// result is what the engine answers for an invocation.
function result(over = {}) {
    return { id: 'inv-1', agent: 'gh1-edge', function: 'alice.nr-fn1@1', status: 'ok', output: { speed: 2 }, exit_code: 0, cold: true,
        timings_ms: { queue: 1, start: 200, run: 30.4, total: 231.6 }, ...over };
}

function flow(url, fn = {}, extra = []) {
    return [
        { id: 'f1', type: 'tab' },
        { id: 'eng', type: 'deviceless-engine', url, namespace: 'alice' },
        { id: 'fn1', type: 'deviceless function', z: 'f1', engine: 'eng', mode: 'inline', runtime: 'python3', code: PY, timeout: '5s', memory: '64Mi',
            targetType: 'labels', labels: 'zone=north, site=gh1', pick: 'one', wires: [['ok'], ['bad']], ...fn },
        { id: 'ok', z: 'f1', type: 'helper' },
        { id: 'bad', z: 'f1', type: 'helper' },
        ...extra,
    ];
}

// engine answers deploys with version 1 and invocations with answer(call).
function deviceless(answer) {
    return (call, reply) => {
        if (call.method === 'PUT') return reply(201, { name: 'alice.nr-fn1', version: 1, ref: 'alice.nr-fn1@1', created: true, warnings: [] });
        if (call.method === 'POST' && call.url.startsWith('/api/v1/invoke/')) return answer(call, reply);
        if (call.url === '/readyz') return reply(200, { status: 'ready', agents_online: 2 });
        if (call.url === '/api/v1/functions') return reply(200, { functions: [{ name: 'fan-speed', source: 'rules', read_only: true }, { name: 'alice.fan', source: 'api', version: 2, ref: 'alice.fan@2' }] });
        reply(404, { error: 'no such path' });
    };
}

// onTab puts the flow's nodes (all but tabs and config nodes) on tab f1 with a position:
// Node-RED takes a node without x and y for a config node.
function onTab(nodes) {
    return nodes.map((n) => (n.type === 'tab' || n.type === 'deviceless-engine' ? n : { z: 'f1', x: 0, y: 0, ...n }));
}

const next = (n) => new Promise((resolve) => n.once('input', resolve));

describe('deviceless function', () => {
    let engine;
    before(() => new Promise((resolve) => helper.startServer(resolve)));
    after(() => new Promise((resolve) => helper.stopServer(resolve)));
    afterEach(async () => {
        await helper.unload();
        if (engine) await engine.close();
        engine = null;
    });

    test('deploys the inline code, invokes that version with msg.payload and sends the result', async () => {
        engine = await startEngine(deviceless((call, reply) => reply(200, result())));
        await helper.load(nodes, onTab(flow(engine.url)), { eng: { token: 'dl_secret' } });
        const fn = helper.getNode('fn1');
        const put = await waitFor('the deploy', () => engine.calls.find((c) => c.method === 'PUT'));
        assert.equal(put.url, '/api/v1/functions/alice.nr-fn1');
        assert.equal(put.auth, 'Bearer dl_secret');
        assert.deepEqual(put.body, { runtime: 'python3', code: PY, timeout: '5s', memory: '64Mi', description: 'Node-RED node fn1',
            target: { labels: { zone: 'north', site: 'gh1' } } });
        const out = next(helper.getNode('ok'));
        fn.receive({ payload: { celsius: 31 } });
        const msg = await out;
        const inv = engine.calls.find((c) => c.method === 'POST');
        assert.equal(inv.url, '/api/v1/invoke/alice.nr-fn1%401');
        assert.deepEqual(inv.body, { args: { celsius: 31 }, target: { labels: { zone: 'north', site: 'gh1' } } });
        assert.deepEqual(msg.payload, { speed: 2 });
        assert.equal(msg.deviceless.agent, 'gh1-edge');
        assert.equal(msg.deviceless.id, 'inv-1');
        assert.equal(msg.deviceless.cold, true);
        assert.equal(msg.deviceless.timings_ms.run, 30.4);
        await waitFor('the status', () => fn.status.lastCall && fn.status.lastCall.args[0].text === 'gh1-edge · cold · 232 ms');
        assert.equal(fn.status.lastCall.args[0].fill, 'green');
    });

    test('a failed invocation goes to output 2 with what happened', async () => {
        engine = await startEngine(deviceless((call, reply) => reply(200, result({ status: 'timeout', output: undefined, error: 'no result within 5s', cold: false }))));
        await helper.load(nodes, onTab(flow(engine.url)), { eng: { token: 't' } });
        const out = next(helper.getNode('bad'));
        helper.getNode('fn1').receive({ payload: 7 });
        const msg = await out;
        assert.equal(msg.deviceless.status, 'timeout');
        assert.equal(msg.deviceless.error, 'no result within 5s');
        assert.equal(msg.payload, 7);
        assert.match(msg.error.message, /alice.nr-fn1@1: timeout on gh1-edge: no result within 5s/);
        assert.deepEqual(engine.calls.find((c) => c.method === 'POST').body.args, { payload: 7 });
        const st = helper.getNode('fn1').status.lastCall.args[0];
        assert.equal(st.fill, 'yellow');
    });

    test('without a wire on output 2 a failure is an error for catch nodes', async () => {
        engine = await startEngine(deviceless((call, reply) => reply(200, result({ status: 'oom', output: undefined, error: 'out of memory (64Mi)' }))));
        const f = flow(engine.url, { wires: [['ok'], []] }, [{ id: 'catch', type: 'catch', z: 'f1', x: 0, y: 0, scope: ['fn1'], uncaught: false, wires: [['caught']] }, { id: 'caught', z: 'f1', x: 0, y: 0, type: 'helper' }]);
        await helper.load(nodes, onTab(f), { eng: { token: 't' } });
        const out = next(helper.getNode('caught'));
        helper.getNode('fn1').receive({ payload: {} });
        const msg = await out;
        assert.match(msg.error.message, /oom on gh1-edge: out of memory/);
        assert.equal(msg.deviceless.status, 'oom');
    });

    test('an unreachable engine: red ring, and each message fails on output 2', async () => {
        engine = await startEngine(() => {});
        const url = engine.url;
        await engine.close();
        engine = null;
        await helper.load(nodes, onTab(flow(url)), { eng: { token: 't' } });
        const fn = helper.getNode('fn1');
        await waitFor('the red ring', () => fn.status.lastCall && fn.status.lastCall.args[0].text === 'engine unreachable');
        assert.equal(fn.status.lastCall.args[0].shape, 'ring');
        const out = next(helper.getNode('bad'));
        fn.receive({ payload: {} });
        const msg = await out;
        assert.equal(msg.deviceless.status, 'unreachable');
        assert.match(msg.error.message, /unreachable/);
    });

    test('a refused deploy says why, and the next message deploys again', async () => {
        let refuse = true;
        engine = await startEngine((call, reply) => {
            if (call.method === 'PUT' && refuse) return reply(403, { error: 'name: token:bob deploys only under its namespace: bob.<name>, not alice.nr-fn1' });
            return deviceless((c, r) => r(200, result()))(call, reply);
        });
        await helper.load(nodes, onTab(flow(engine.url)), { eng: { token: 't' } });
        const fn = helper.getNode('fn1');
        await waitFor('the deploy error', () => fn.error.called);
        assert.match(fn.error.firstCall.args[0], /403: name: token:bob deploys only under its namespace/);
        assert.equal(fn.status.lastCall.args[0].text, 'deploy failed');
        const bad = next(helper.getNode('bad'));
        fn.receive({ payload: {} });
        assert.match((await bad).error.message, /403/);
        refuse = false;
        const ok = next(helper.getNode('ok'));
        fn.receive({ payload: {} });
        assert.deepEqual((await ok).payload, { speed: 2 });
        assert.equal(engine.calls.filter((c) => c.method === 'PUT').length, 3);
    });

    test('an existing function: its name, the node target and msg.target overriding it; user and password', async () => {
        engine = await startEngine(deviceless((call, reply) => {
            const r = result({ function: 'alice.fan@2' });
            reply(200, call.url.endsWith('?all=true') ? { results: [r] } : r);
        }));
        const f = flow(engine.url, { mode: 'existing', function: 'alice.fan', targetType: 'agent', agent: 'gh2-edge', pick: 'one' });
        await helper.load(nodes, onTab(f), { eng: { user: 'nodered', password: 'pw:with:colons' } });
        const fn = helper.getNode('fn1');
        for (const target of [undefined, 'gh9-edge', { labels: { zone: 'south', n: 3 }, pick: 'all' }]) {
            const out = next(helper.getNode('ok'));
            fn.receive({ payload: { x: 1 }, target });
            await out;
        }
        assert.equal(engine.calls.filter((c) => c.method === 'PUT').length, 0);
        const invs = engine.calls.filter((c) => c.method === 'POST');
        assert.deepEqual(invs.map((c) => c.url), ['/api/v1/invoke/alice.fan', '/api/v1/invoke/alice.fan', '/api/v1/invoke/alice.fan?all=true']);
        assert.deepEqual(invs.map((c) => c.body.target), [{ agent: 'gh2-edge' }, { agent: 'gh9-edge' }, { labels: { zone: 'south', n: '3' }, pick: 'all' }]);
        assert.equal(invs[0].auth, 'Basic ' + Buffer.from('nodered:pw:with:colons').toString('base64'));
        const bad = next(helper.getNode('bad'));
        fn.receive({ payload: {}, target: { agents: ['x'] } });
        assert.match((await bad).error.message, /msg.target.agents: unknown field/);
        assert.equal(engine.calls.filter((c) => c.method === 'POST').length, 3);
    });

    test('pick all: one message per agent, each result on its output', async () => {
        engine = await startEngine(deviceless((call, reply) => reply(200, { results: [
            result({ id: 'i1', agent: 'a1', output: 'one' }),
            result({ id: 'i2', agent: 'a2', status: 'timeout', output: undefined, error: 'no result within 5s' }),
            result({ id: 'i3', agent: 'a3', output: 'three' }),
        ] })));
        await helper.load(nodes, onTab(flow(engine.url, { pick: 'all' })), { eng: { token: 't' } });
        const oks = [];
        const bads = [];
        helper.getNode('ok').on('input', (m) => oks.push(m));
        helper.getNode('bad').on('input', (m) => bads.push(m));
        helper.getNode('fn1').receive({ payload: { n: 1 }, topic: 'keep' });
        await waitFor('three messages', () => oks.length + bads.length === 3);
        const inv = engine.calls.find((c) => c.method === 'POST');
        assert.equal(inv.url, '/api/v1/invoke/alice.nr-fn1%401?all=true');
        assert.deepEqual(inv.body.target, { labels: { zone: 'north', site: 'gh1' }, pick: 'all' });
        assert.deepEqual(oks.map((m) => [m.deviceless.agent, m.payload, m.topic]), [['a1', 'one', 'keep'], ['a3', 'three', 'keep']]);
        assert.deepEqual(bads.map((m) => [m.deviceless.agent, m.deviceless.status, m.payload]), [['a2', 'timeout', { n: 1 }]]);
        assert.notEqual(oks[0], oks[1]); // copies, not one object sent twice
    });

    test('an HTTP error of the engine (unknown function) goes to output 2 with its status', async () => {
        engine = await startEngine(deviceless((call, reply) => reply(404, { error: 'unknown function "alice.gone"' })));
        await helper.load(nodes, onTab(flow(engine.url, { mode: 'existing', function: 'alice.gone' })), { eng: { token: 't' } });
        const bad = next(helper.getNode('bad'));
        helper.getNode('fn1').receive({ payload: {} });
        const msg = await bad;
        assert.equal(msg.deviceless.http_status, 404);
        assert.match(msg.error.message, /404: unknown function "alice.gone"/);
    });

    test('many messages in flight: at most the node\'s bound at once, every one answered, 503 retried', async () => {
        let running = 0;
        let most = 0;
        let busy = 2;
        const waiting = [];
        engine = await startEngine(deviceless((call, reply) => {
            if (busy > 0) {
                busy--;
                return reply(503, { error: 'too many requests in progress' }, { 'Retry-After': '0' });
            }
            running++;
            most = Math.max(most, running);
            waiting.push(() => {
                running--;
                reply(200, result({ id: 'inv-' + call.body.args.n, output: call.body.args.n }));
            });
        }));
        await helper.load(nodes, onTab(flow(engine.url, { concurrency: 4 })), { eng: { token: 't' } });
        const fn = helper.getNode('fn1');
        const got = [];
        helper.getNode('ok').on('input', (m) => got.push(m.payload));
        const N = 60;
        for (let n = 0; n < N; n++) fn.receive({ payload: { n } });
        // Answer whatever is waiting until every message has its result.
        // Answer once the node has its bound in flight (or the last few), so the bound shows.
        let answered = 0;
        await waitFor('all results', () => {
            if (waiting.length >= 4 || answered + waiting.length === N) {
                answered += waiting.length;
                while (waiting.length) waiting.shift()();
            }
            return got.length === N;
        }, 30000);
        assert.equal(most, 4);
        assert.deepEqual([...got].sort((a, b) => a - b), [...Array(N).keys()]);
    });

    test('a flood beyond the queue: each message over the bound fails on output 2 at once, none is lost', async () => {
        const hold = [];
        engine = await startEngine(deviceless((call, reply) => hold.push(() => reply(200, result({ output: call.body.args.n })))));
        helper.settings({ devicelessMaxQueue: 5 });
        await helper.load(nodes, onTab(flow(engine.url, { concurrency: 2 })), { eng: { token: 't' } });
        const fn = helper.getNode('fn1');
        const oks = [];
        const bads = [];
        helper.getNode('ok').on('input', (m) => oks.push(m.payload));
        helper.getNode('bad').on('input', (m) => bads.push(m));
        for (let n = 0; n < 20; n++) fn.receive({ payload: { n } });
        // 2 in flight, 5 waiting, 13 refused.
        await waitFor('the refusals', () => bads.length === 13 && hold.length === 2);
        assert.ok(bads.every((m) => m.deviceless.error === 'queue full' && /5 messages waiting/.test(m.error.message)));
        await waitFor('the rest answered', () => {
            while (hold.length) hold.shift()();
            return oks.length === 7;
        });
        assert.deepEqual([...oks, ...bads.map((m) => m.payload.n)].sort((a, b) => a - b), [...Array(20).keys()]);
        helper.settings({});
    });

    test('a redeploy while invocations run: results that come are logged, the rest reported as errors', async () => {
        const hold = [];
        engine = await startEngine(deviceless((call, reply) => hold.push(() => reply(200, result({ output: 'late' })))));
        helper.settings({ devicelessCloseWaitMs: 300 });
        await helper.load(nodes, onTab(flow(engine.url)), { eng: { token: 't' } });
        const fn = helper.getNode('fn1');
        fn.receive({ payload: { a: 1 } });
        fn.receive({ payload: { a: 2 } });
        await waitFor('two invocations at the engine', () => hold.length === 2);
        const closed = fn.close();
        hold.shift()(); // one answers while the node closes
        await waitFor('the late result logged', () => fn.warn.getCalls().some((c) => /answered after the flow stopped.*ok on gh1-edge: "late"/.test(c.args[0])));
        await closed;
        const errs = fn.error.getCalls().map((c) => c.args[0]);
        assert.equal(errs.length, 1, errs.join('\n'));
        assert.match(errs[0], /flow stopped while alice.nr-fn1@1 ran for message .*the engine finishes it; see GET \/api\/v1\/functions\/alice.nr-fn1\/logs/);
        helper.settings({});
    });

    test('an engine answering nonsense or too much: an error on output 2, nothing buffered without bound', async () => {
        let answer;
        engine = await startEngine((call, reply) => {
            if (call.method === 'PUT') return reply(201, { ref: 'alice.nr-fn1@1', created: true });
            return answer(reply);
        });
        await helper.load(nodes, onTab(flow(engine.url)), { eng: { token: 't' } });
        const fn = helper.getNode('fn1');
        const cases = [
            [(reply) => reply(200, 'x'.repeat(9 << 20)), /answer larger than 8388608 bytes/],
            [(reply) => reply.raw(502, '<html>bad gateway</html>'), /502 with a body that is not JSON: <html>bad gateway/],
            [(reply) => reply.raw(200, '{"status": "ok", "output": '), /200 with a body that is not JSON/],
        ];
        for (const [a, want] of cases) {
            answer = a;
            const bad = next(helper.getNode('bad'));
            fn.receive({ payload: {} });
            assert.match((await bad).error.message, want);
        }
    });

    test('bad settings are refused at start, with a red ring and an error per message', async () => {
        engine = await startEngine(deviceless(() => {}));
        await helper.load(nodes, onTab(flow(engine.url, { labels: 'zone' })), { eng: {} });
        const fn = helper.getNode('fn1');
        assert.match(fn.status.lastCall.args[0].text, /label "zone": write key=value/);
        assert.equal(engine.calls.length, 0);
    });
});

describe('deviceless-engine', () => {
    let engine;
    before(() => new Promise((resolve) => helper.startServer(resolve)));
    after(() => new Promise((resolve) => helper.stopServer(resolve)));
    afterEach(async () => {
        await helper.unload();
        if (engine) await engine.close();
    });

    test('keeps the credentials out of the flow and tests the connection with the stored ones', async () => {
        engine = await startEngine((call, reply) => {
            if (call.auth !== 'Bearer dl_stored' && call.url !== '/readyz') return reply(401, { error: 'unknown token' });
            return deviceless(() => {})(call, reply);
        });
        await helper.load(nodes, onTab([{ id: 'eng', type: 'deviceless-engine', url: engine.url + '/' }]), { eng: { token: 'dl_stored' } });
        const eng = helper.getNode('eng');
        assert.equal(eng.url, engine.url);
        assert.equal(eng.credentials.token, 'dl_stored');
        assert.equal(eng.token, undefined);
        // The editor sends "__PWRD__" for a password it does not know: the stored one is used.
        let res = await helper.request().post('/deviceless-engine/test').send({ id: 'eng', url: engine.url, token: '__PWRD__' }).expect(200);
        assert.deepEqual(res.body, { ok: true, status: 'ready', agents_online: 2, functions: 2 });
        res = await helper.request().post('/deviceless-engine/test').send({ id: 'eng', url: engine.url, token: 'wrong' }).expect(200);
        assert.equal(res.body.ok, false);
        assert.match(res.body.error, /401: unknown token/);
        res = await helper.request().post('/deviceless-engine/functions').send({ id: 'eng' }).expect(200);
        assert.deepEqual(res.body.functions.map((f) => f.name), ['fan-speed', 'alice.fan']);
        // The stored token goes only to the URL it was deployed with.
        const other = await startEngine((call, reply) => reply(401, { error: `auth ${call.auth}` }));
        res = await helper.request().post('/deviceless-engine/functions').send({ id: 'eng', url: other.url, token: '__PWRD__' }).expect(200);
        await other.close();
        assert.equal(res.body.ok, false);
        assert.deepEqual(other.calls.map((c) => c.auth), [undefined]);
        res = await helper.request().post('/deviceless-engine/test').send({ url: 'ftp://x' }).expect(200);
        assert.match(res.body.error, /use http:\/\/ or https:\/\//);
        res = await helper.request().post('/deviceless-engine/test').send({ url: 'http://127.0.0.1:1' }).expect(200);
        assert.equal(res.body.unreachable, true);
    });
});

describe('deviceless event', () => {
    let engine;
    before(() => new Promise((resolve) => helper.startServer(resolve)));
    after(() => new Promise((resolve) => helper.stopServer(resolve)));
    afterEach(async () => {
        await helper.unload();
        if (engine) await engine.close();
    });

    const loop = (over) => ({ id: 'i1', rule: 'too-hot', function: 'alice.fan@2', agent: 'gh1-edge', status: 'ok', cold: false, attempts: 1,
        output: { speed: 2 }, topic: 'greenhouse/gh1/temp', finished_at: new Date().toISOString(), ms: { run: 3 }, ...over });

    test('sends the results of its function and rule; skips old, repeated and other ones', async () => {
        engine = await startEngine(() => {});
        await helper.load(nodes, onTab([
            { id: 'eng', type: 'deviceless-engine', url: engine.url },
            { id: 'f1', type: 'tab' },
            { id: 'ev', type: 'deviceless event', engine: 'eng', function: 'alice.fan', rule: '', status: 'all', wires: [['out']] },
            { id: 'evf', type: 'deviceless event', engine: 'eng', function: '', rule: 'too-hot', status: 'failed', wires: [['outf']] },
            { id: 'out', type: 'helper' },
            { id: 'outf', type: 'helper' },
        ]), { eng: { token: 'viewer' } });
        await waitFor('one shared stream', () => engine.streams.size === 1);
        await waitFor('connected', () => helper.getNode('ev').status.lastCall && helper.getNode('ev').status.lastCall.args[0].text === 'connected');
        const streams = engine.calls.filter((c) => c.url.startsWith('/api/v1/events'));
        assert.deepEqual(streams.map((c) => [c.url, c.auth]), [['/api/v1/events?backlog=false', 'Bearer viewer']]);
        const got = [];
        const gotf = [];
        helper.getNode('out').on('input', (m) => got.push(m));
        helper.getNode('outf').on('input', (m) => gotf.push(m));
        engine.emit('stats', { events: 1 });
        engine.emit('loop', loop({ id: 'old', finished_at: '2020-01-01T00:00:00Z' }));
        engine.emit('loop', loop({ id: 'a' }));
        engine.emit('loop', loop({ id: 'a' }));
        engine.emit('loop', loop({ id: 'b', function: 'alice.fanfare@1' }));
        engine.emit('loop', loop({ id: 'c', function: 'alice.fan@3', status: 'timeout', output: undefined, error: 'no result' }));
        engine.emit('loop', loop({ id: 'd', rule: 'other', status: 'error' }));
        await waitFor('the results', () => got.length === 3 && gotf.length === 1);
        assert.deepEqual(got.map((m) => m.deviceless.id), ['a', 'c', 'd']);
        assert.equal(got[0].topic, 'deviceless/results/alice.fan@2');
        assert.deepEqual(got[0].payload, { speed: 2 });
        assert.equal(got[1].payload, null);
        assert.equal(gotf[0].deviceless.id, 'c');
        assert.equal(gotf[0].deviceless.error, 'no result');
    });

    test('reconnects after the engine went away and says so meanwhile', async () => {
        engine = await startEngine(() => {});
        await helper.load(nodes, onTab([
            { id: 'eng', type: 'deviceless-engine', url: engine.url },
            { id: 'f1', type: 'tab' },
            { id: 'ev', type: 'deviceless event', engine: 'eng', function: '', rule: '', status: 'all', wires: [['out']] },
            { id: 'out', type: 'helper' },
        ]), { eng: {} });
        const ev = helper.getNode('ev');
        await waitFor('a stream', () => engine.streams.size === 1);
        const first = next(helper.getNode('out'));
        engine.emit('loop', loop({ id: 'seen' }));
        await first;
        for (const s of engine.streams) s.destroy(); // the engine restarts
        await waitFor('the red ring', () => ev.status.getCalls().some((c) => c.args[0].text === 'engine unreachable'));
        await waitFor('a new stream', () => engine.streams.size === 1, 15000);
        // The new stream takes the engine's backlog, to fill the gap, less what the node has
        // sent and what finished before it started.
        assert.deepEqual(engine.calls.filter((c) => c.url.startsWith('/api/v1/events')).map((c) => c.url), ['/api/v1/events?backlog=false', '/api/v1/events']);
        const got = [];
        helper.getNode('out').on('input', (m) => got.push(m.deviceless.id));
        engine.emit('loop', loop({ id: 'seen' }));
        engine.emit('loop', loop({ id: 'before', finished_at: '2020-01-01T00:00:00Z' }));
        engine.emit('loop', loop({ id: 'after' }));
        await waitFor('the result after the reconnection', () => got.length === 1);
        assert.deepEqual(got, ['after']);
    });
});

describe('client', () => {
    const { Client } = require('../nodes/client.js');
    test('a silent engine: no answer within the deadline; a cancel ends the call', async () => {
        const engine = await startEngine(() => {}); // never answers
        try {
            const c = new Client({ url: engine.url, credentials: { token: 't' } });
            await assert.rejects(c.functions({ timeoutMs: 100 }), (err) => err.unreachable && /no answer within 100 ms/.test(err.message));
            const ctl = new AbortController();
            const call = c.invoke('fn', { args: {} }, { signal: ctl.signal });
            await waitFor('the call at the engine', () => engine.calls.some((x) => x.method === 'POST'));
            ctl.abort();
            await assert.rejects(call, /cancelled/);
        } finally {
            await engine.close();
        }
    });
});

describe('pure parts', () => {
    const { parseLabels, targetOf, argsOf, seconds, inlineName } = functionNode.internal;
    const { matchesFunction } = eventNode.internal;
    test('labels, targets, args, durations, names', () => {
        assert.deepEqual(parseLabels(' a=1 ,b = x=y,'), { a: '1', b: 'x=y' });
        assert.throws(() => parseLabels('=1'), /write key=value/);
        assert.deepEqual(targetOf({ targetType: 'default', pick: 'all' }), { pick: 'all' });
        assert.equal(targetOf({ targetType: 'default', pick: 'one' }), undefined);
        assert.throws(() => targetOf({ targetType: 'agent' }), /name the agent/);
        assert.deepEqual(argsOf(Buffer.from('hi')), { payload: 'hi' });
        assert.deepEqual(argsOf([1, 2]), { payload: [1, 2] });
        assert.equal(seconds('1m30s'), 90);
        assert.equal(seconds('500ms'), 0.5);
        assert.ok(Number.isNaN(seconds('10')));
        assert.ok(Number.isNaN(seconds('10s; rm')));
        assert.equal(inlineName({ id: 'ab12.cd', fname: '' }, 'alice'), 'alice.nr-ab12-cd');
        assert.equal(inlineName({ id: 'x', fname: 'fan' }, 'alice'), 'alice.fan');
        assert.equal(inlineName({ id: 'x', fname: 'bob.fan' }, 'alice'), 'bob.fan');
        assert.equal(inlineName({ id: 'x', fname: '' }, ''), 'nr-x');
        assert.ok(matchesFunction('fan', 'fan@3') && matchesFunction('fan', 'fan') && !matchesFunction('fan', 'fanfare@1'));
        assert.ok(matchesFunction('fan@3', 'fan@3') && !matchesFunction('fan@3', 'fan@2'));
    });
});
