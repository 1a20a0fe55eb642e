// deviceless event: sends a message for each finished invocation the engine reports on its
// event stream (the same results as deviceless/results/{function}): those of one function
// (any version), of one rule's firings, or all; optionally only failures or successes.
'use strict';

// How many ids an event node remembers.
const SEEN = 4096;

// matchesFunction: "fan" matches fan and fan@N; "fan@2" only that version.
function matchesFunction(filter, fn) {
    if (!filter) return true;
    if (filter.includes('@')) return fn === filter;
    return fn === filter || String(fn).startsWith(filter + '@');
}

function accepts(config, loop) {
    if (!matchesFunction(String(config.function || '').trim(), loop.function)) return false;
    const rule = String(config.rule || '').trim();
    if (rule && loop.rule !== rule) return false;
    if (config.status === 'ok' && loop.status !== 'ok') return false;
    if (config.status === 'failed' && loop.status === 'ok') return false;
    return true;
}

module.exports = function (RED) {
    function DevicelessEventNode(config) {
        RED.nodes.createNode(this, config);
        const node = this;
        const engine = RED.nodes.getNode(config.engine);
        // Ids already sent: a reconnected stream starts with the engine's recent results.
        const seen = new Set();
        if (!engine) {
            node.status({ fill: 'red', shape: 'ring', text: 'no engine configured' });
            return;
        }
        const sub = {
            onState(connected, error) {
                if (connected) node.status({ fill: 'green', shape: 'ring', text: 'connected' });
                else if (error) node.status({ fill: 'red', shape: 'ring', text: 'engine unreachable' });
                else node.status({});
                if (error && error !== sub.lastError) node.warn(`event stream: ${error}`);
                sub.lastError = error;
            },
            onEvent(event, loop) {
                if (event !== 'loop' || !loop || typeof loop !== 'object') return;
                if (seen.has(loop.id)) return;
                seen.add(loop.id);
                if (seen.size > SEEN) seen.delete(seen.values().next().value);
                if (!accepts(config, loop)) return;
                node.send({ topic: `deviceless/results/${loop.function}`, payload: loop.output === undefined ? null : loop.output, deviceless: loop });
                node.status({ fill: 'green', shape: 'dot', text: `${loop.function} ${loop.status}${loop.agent ? ' · ' + loop.agent : ''}` });
            },
        };
        engine.stream.subscribe(sub);
        node.on('close', (done) => {
            engine.stream.unsubscribe(sub).then(() => done(), () => done());
        });
    }

    RED.nodes.registerType('deviceless event', DevicelessEventNode);
};

module.exports.internal = { matchesFunction, accepts };
