// deviceless function: runs a Deviceless function on an edge agent for each message. The
// function is one the engine has, or code written in the node (python3 or sh) that is
// deployed as a new function version when the flow is deployed; the node then invokes
// exactly that version (name@N), so a redeploy with new code never runs the old one.
'use strict';

const { EngineError } = require('./client');

// Defaults and bounds of the node's own settings.
const DEFAULT_TIMEOUT = '10s';
const DEFAULT_MEMORY = '64Mi';
const DEFAULT_MAX_IN_FLIGHT = 16;
const MAX_QUEUE = 10000; // settings.js: devicelessMaxQueue
// How long a closing node (redeploy, stop) waits for invocations still in flight; below
// Node-RED's own 15 s close timeout so that each one is reported before the runtime moves on.
const CLOSE_WAIT_MS = 10000; // settings.js: devicelessCloseWaitMs
const RUNTIMES = ['python3', 'sh'];

// parseLabels reads "zone=north, site=gh1" into an object; bad entries are errors.
function parseLabels(text) {
    const labels = {};
    for (const part of String(text || '').split(',')) {
        const p = part.trim();
        if (!p) continue;
        const i = p.indexOf('=');
        if (i <= 0) throw new Error(`label ${JSON.stringify(p)}: write key=value`);
        labels[p.slice(0, i).trim()] = p.slice(i + 1).trim();
    }
    return labels;
}

// targetOf is the node's configured target; undefined leaves it to the function's default.
function targetOf(config) {
    const pick = config.pick === 'all' ? 'all' : undefined;
    switch (config.targetType) {
        case 'agent':
            if (!config.agent) throw new Error('target: name the agent');
            return { agent: String(config.agent).trim(), pick };
        case 'labels': {
            const labels = parseLabels(config.labels);
            if (Object.keys(labels).length === 0) throw new Error('target: give at least one label');
            return { labels, pick };
        }
        default:
            return pick ? { pick } : undefined;
    }
}

// msgTarget reads msg.target: an agent id, or {agent, labels, pick}.
function msgTarget(t) {
    if (t === undefined || t === null) return undefined;
    if (typeof t === 'string') return { agent: t };
    if (typeof t !== 'object' || Array.isArray(t)) throw new Error('msg.target: an agent id or an object {agent, labels, pick}');
    const out = {};
    for (const [k, v] of Object.entries(t)) {
        if (k === 'agent' || k === 'pick') {
            if (typeof v !== 'string') throw new Error(`msg.target.${k}: a string`);
            out[k] = v;
        } else if (k === 'labels') {
            if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('msg.target.labels: an object of strings');
            out.labels = {};
            for (const [lk, lv] of Object.entries(v)) out.labels[lk] = String(lv);
        } else {
            throw new Error(`msg.target.${k}: unknown field (agent, labels, pick)`);
        }
    }
    return out;
}

// argsOf: an object payload is the arguments; anything else is {payload: value}.
function argsOf(payload) {
    if (payload === undefined || payload === null) return {};
    if (typeof payload === 'object' && !Array.isArray(payload) && !Buffer.isBuffer(payload)) return payload;
    if (Buffer.isBuffer(payload)) return { payload: payload.toString('utf8') };
    return { payload };
}

// seconds reads a Go duration ("10s", "1m30s", "500ms") for the HTTP deadline.
function seconds(d) {
    let total = 0;
    const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
    let m;
    let matched = '';
    while ((m = re.exec(d)) !== null) {
        total += Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2]];
        matched += m[0];
    }
    return matched === d && matched !== '' ? total : NaN;
}

// inlineName is the deployed function's name: the one chosen, or the flow node's id under
// the engine's namespace (a developer deploys only under its own).
function inlineName(config, namespace) {
    const chosen = String(config.fname || '').trim();
    if (chosen) return chosen.includes('.') || !namespace ? chosen : `${namespace}.${chosen}`;
    const id = 'nr-' + String(config.id).replace(/[^A-Za-z0-9_-]/g, '-');
    return namespace ? `${namespace}.${id}` : id;
}

module.exports = function (RED) {
    function DevicelessFunctionNode(config) {
        RED.nodes.createNode(this, config);
        const node = this;
        const engine = RED.nodes.getNode(config.engine);
        const inline = config.mode === 'inline';
        const maxInFlight = Math.max(1, Number(config.concurrency) || DEFAULT_MAX_IN_FLIGHT);
        const maxQueue = Number(RED.settings.devicelessMaxQueue) || MAX_QUEUE;
        // In flight by a number of their own: copies of one message share a _msgid.
        const inFlight = new Map(); // seq → {msgid, ref, abort, started}
        let seq = 0;
        const queue = [];
        let closing = false;
        let deployed = null; // a promise of the ref to invoke
        let last = null; // the last call's status text
        let unreachable = false;

        let problem = null;
        let target;
        let timeoutS = 600; // an existing function's timeout is the engine's business
        try {
            if (!engine) throw new Error('no Deviceless engine configured');
            if (engine.configError) throw new Error(engine.configError);
            target = targetOf(config);
            if (inline) {
                if (!RUNTIMES.includes(config.runtime)) throw new Error(`runtime ${JSON.stringify(config.runtime)}: use ${RUNTIMES.join(' or ')}`);
                if (!String(config.code || '').trim()) throw new Error('no code');
                timeoutS = seconds(config.timeout || DEFAULT_TIMEOUT);
                if (!(timeoutS > 0)) throw new Error(`timeout ${JSON.stringify(config.timeout)}: a duration such as 10s or 1m`);
            } else if (!String(config.function || '').trim()) {
                throw new Error('pick a function');
            }
        } catch (err) {
            problem = err.message;
        }

        const status = () => {
            if (problem) return node.status({ fill: 'red', shape: 'ring', text: problem.slice(0, 60) });
            if (unreachable) return node.status({ fill: 'red', shape: 'ring', text: 'engine unreachable' });
            const n = inFlight.size + queue.length;
            if (last) return node.status({ ...last, text: n > 0 ? `${last.text} (${n} in flight)` : last.text });
            if (n > 0) return node.status({ fill: 'blue', shape: 'dot', text: `${n} in flight` });
            node.status({});
        };

        // deploy puts the inline code as the next version of its name; the engine answers
        // with the latest version unchanged when the code and settings are the same.
        const deploy = async () => {
            if (!inline) return String(config.function).trim();
            const name = inlineName(config, engine.namespace);
            const def = {
                runtime: config.runtime, code: config.code, timeout: config.timeout || DEFAULT_TIMEOUT,
                memory: config.memory || DEFAULT_MEMORY, description: `Node-RED node ${config.id}${config.name ? ' (' + config.name + ')' : ''}`,
            };
            if (target && (target.agent || target.labels)) def.target = target;
            const ans = await engine.client.deploy(name, def, { timeoutMs: 30000 });
            if (typeof ans.ref !== 'string' || !ans.ref.startsWith(name + '@')) {
                throw new EngineError(`PUT /api/v1/functions/${name}: an answer without the version deployed: ${JSON.stringify(ans).slice(0, 200)}`, 200);
            }
            node.log(`${ans.created ? 'deployed' : 'unchanged'} ${ans.ref}${(ans.warnings || []).length ? ': ' + ans.warnings.join('; ') : ''}`);
            for (const w of ans.warnings || []) node.warn(`${ans.ref}: ${w}`);
            last = { fill: 'grey', shape: 'dot', text: `${ans.created ? 'deployed' : 'ready'} ${ans.ref}` };
            unreachable = false;
            status();
            return ans.ref;
        };

        // ref returns the function version to invoke, deploying again after a failed
        // deploy (the engine may have been away when the flow was deployed).
        const ref = () => {
            if (!deployed) {
                deployed = deploy().catch((err) => {
                    deployed = null;
                    throw err;
                });
            }
            return deployed;
        };

        const wired2 = () => node.wires && node.wires[1] && node.wires[1].length > 0;

        const fail = (msg, send, done, info, text) => {
            msg.deviceless = info;
            msg.error = { message: text, source: { id: node.id, type: node.type, name: node.name } };
            if (wired2()) {
                send([null, msg]);
                done();
            } else {
                done(text); // output 2 is not wired: a catch node gets it
            }
        };

        // deliver sends one message per result (several for a `pick: all` target, each a
        // copy of msg): successes on output 1, failures on output 2 or, unwired, as errors.
        const deliver = (r, msg, send, done, results, started) => {
            const failed = [];
            results.forEach((res, i) => {
                const m = results.length > 1 && i < results.length - 1 ? RED.util.cloneMessage(msg) : msg;
                m.deviceless = {
                    id: res.id, agent: res.agent, function: res.function, status: res.status, cold: res.cold,
                    exit_code: res.exit_code, timings_ms: res.timings_ms, error: res.error, expired: res.expired,
                };
                if (closing) {
                    node.warn(`${r} answered after the flow stopped (message ${msg._msgid}): ${res.status} on ${res.agent || 'no agent'}: ` +
                        JSON.stringify(res.status === 'ok' ? res.output : res.error).slice(0, 500));
                }
                const ms = res.timings_ms ? Math.round(res.timings_ms.total) : Date.now() - started;
                if (res.status === 'ok') {
                    last = { fill: 'green', shape: 'dot', text: `${res.agent} · ${res.cold ? 'cold' : 'warm'} · ${ms} ms` };
                    m.payload = res.output === undefined ? null : res.output;
                    send([m, null]);
                    return;
                }
                last = { fill: res.status === 'timeout' || res.status === 'oom' ? 'yellow' : 'red', shape: 'dot', text: `${res.status}${res.agent ? ' · ' + res.agent : ''} · ${ms} ms` };
                if (res.output !== undefined) m.payload = res.output;
                m.error = { message: `${r}: ${res.status}${res.agent ? ' on ' + res.agent : ''}: ${res.error || 'failed'}`, source: { id: node.id, type: node.type, name: node.name } };
                failed.push(m);
            });
            if (failed.length === 0) return done();
            if (wired2()) {
                for (const m of failed) send([null, m]);
                return done();
            }
            // Unwired output 2: each failure is an error a catch node gets.
            const lastFailed = failed.pop();
            for (const m of failed) node.error(m.error.message, m);
            done(lastFailed.error.message);
        };

        const run = async (msg, send, done) => {
            const key = ++seq;
            const entry = { msgid: msg._msgid, abort: new AbortController(), started: Date.now(), ref: '' };
            inFlight.set(key, entry);
            status();
            try {
                const r = await ref();
                entry.ref = r;
                const req = { args: argsOf(msg.payload) };
                const t = msgTarget(msg.target) || target;
                if (t) req.target = t;
                const all = !!(t && t.pick === 'all');
                const opts = { signal: entry.abort.signal, timeoutMs: (timeoutS * 3 + 30) * 1000, all };
                let results;
                try {
                    const ans = await engine.client.invoke(r, req, opts);
                    results = all ? ans.results : [ans];
                    if (!Array.isArray(results) || results.length === 0) throw new EngineError(`POST /api/v1/invoke/${r}: an answer without results`, 200);
                } catch (err) {
                    // pick all past the engine's budget: the results that came, then the error.
                    if (!(all && err instanceof EngineError && err.body && Array.isArray(err.body.results) && err.body.results.length > 0)) throw err;
                    deliver(r, RED.util.cloneMessage(msg), send, () => {}, err.body.results, entry.started);
                    throw err;
                }
                unreachable = false;
                deliver(r, msg, send, done, results, entry.started);
            } catch (err) {
                const code = err instanceof EngineError ? err.status : undefined;
                if (entry.abort.signal.aborted) {
                    done(); // reported when the flow stopped
                    return;
                }
                if (err instanceof EngineError && err.unreachable) unreachable = true;
                else last = { fill: 'red', shape: 'dot', text: `error${code ? ' ' + code : ''}` };
                fail(msg, send, done, { function: entry.ref || undefined, status: err.unreachable ? 'unreachable' : 'error', http_status: code, error: err.message }, err.message);
            } finally {
                inFlight.delete(key);
                if (entry.onSettled) entry.onSettled();
                next();
                status();
            }
        };

        const next = () => {
            while (!closing && inFlight.size < maxInFlight && queue.length > 0) {
                const q = queue.shift();
                run(q.msg, q.send, q.done);
            }
        };

        node.on('input', (msg, send, done) => {
            if (problem) {
                done(problem);
                return;
            }
            if (closing) {
                done('the flow is stopping: not invoked');
                return;
            }
            if (queue.length >= maxQueue) {
                fail(msg, send, done, { status: 'error', error: 'queue full' }, `${maxQueue} messages waiting for the engine already: not invoked`);
                return;
            }
            queue.push({ msg, send, done });
            next();
            status();
        });

        // On redeploy or stop, what is in flight is not dropped silently: the node waits up
        // to CLOSE_WAIT_MS for the answers (the engine runs them to the end either way),
        // logs each one that arrives (the next nodes are stopping and cannot take it), and
        // reports each one still open and each queued message as an error.
        node.on('close', (removed, done) => {
            closing = true;
            for (const q of queue.splice(0)) {
                node.error(`flow stopped before ${q.msg._msgid} was invoked: not run`, q.msg);
                q.done();
            }
            const open = [...inFlight.entries()];
            if (open.length === 0) return done();
            node.status({ fill: 'blue', shape: 'ring', text: `stopping: ${open.length} in flight` });
            const waits = open.map(([, e]) => new Promise((resolve) => (e.onSettled = resolve)));
            const timer = setTimeout(() => {
                for (const e of inFlight.values()) {
                    node.error(`flow stopped while ${e.ref || 'a function'} ran for message ${e.msgid} (${Date.now() - e.started} ms): ` +
                        `the engine finishes it; see GET /api/v1/functions/${(e.ref || '').split('@')[0]}/logs`);
                    e.abort.abort();
                }
            }, Number(RED.settings.devicelessCloseWaitMs) || CLOSE_WAIT_MS);
            Promise.all(waits).then(() => {
                clearTimeout(timer);
                done();
            });
        });

        status();
        if (!problem && inline) {
            ref().catch((err) => {
                if (err.unreachable) unreachable = true;
                else last = { fill: 'red', shape: 'ring', text: 'deploy failed' };
                node.error(`deploying the inline code: ${err.message}`);
                status();
            });
        }
    }

    RED.nodes.registerType('deviceless function', DevicelessFunctionNode);
};

module.exports.internal = { parseLabels, targetOf, msgTarget, argsOf, seconds, inlineName };
