// Deviceless console: reads the engine's HTTP API and its live stream (GET /api/v1/events,
// server-sent events). No build step, no dependency. Everything the API returns is put on
// the page as text (textContent), never as HTML.
//
// Credentials: none for an open API (the demo). Otherwise the page asks for an API token or
// a broker user, keeps the Authorization header value in sessionStorage (this tab only) and
// sends it with every request; fetch runs with credentials: 'omit', so the browser neither
// adds cookies nor shows its own password prompt.

const AUTH_KEY = 'deviceless.authorization';
const WINDOW_MS = 5 * 60 * 1000; // the chart's span
const MAX_LOOPS = 60; // rows kept in the live loops table

class AuthError extends Error {}

const $ = (id) => document.getElementById(id);

// el builds an element: props are set as properties (className, dataset.x via 'data-x'),
// children are nodes or text.
function el(tag, props, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('data-')) n.dataset[k.slice(5).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = String(v);
    else n[k] = v;
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return n;
}

function authHeader() {
  return sessionStorage.getItem(AUTH_KEY);
}

async function api(path, init = {}) {
  const headers = new Headers(init.headers || {});
  const a = authHeader();
  if (a) headers.set('Authorization', a);
  const res = await fetch(path, { ...init, headers, credentials: 'omit', cache: 'no-store' });
  if (res.status === 401) {
    const body = await res.json().catch(() => ({}));
    needSignIn(body.error || 'The API needs credentials.');
    throw new AuthError(body.error);
  }
  if (res.status === 403) {
    const body = await res.json().catch(() => ({}));
    needSignIn(body.error || 'These credentials may not read the API.');
    throw new AuthError(body.error);
  }
  if (res.status === 429) { // too many failed sign-ins from this address
    const body = await res.json().catch(() => ({}));
    needSignIn(body.error || 'Too many failed sign-ins: wait a minute.', true);
    throw new AuthError(body.error);
  }
  return res;
}

async function getJSON(path) {
  const res = await api(path);
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res.json();
}

// --- sign in ---------------------------------------------------------------------------

let signedOut = false;

// needSignIn shows the sign-in form; the stored credentials are dropped unless keep (they
// were not refused, the address is only blocked for a while).
function needSignIn(why, keep) {
  signedOut = true;
  if (!keep) sessionStorage.removeItem(AUTH_KEY);
  $('signin-why').textContent = why;
  $('signin').hidden = false;
  $('signout').hidden = true;
  setConn('auth', 'signed out');
}

function setupSignIn() {
  $('signin-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = $('signin-token').value.trim();
    const user = $('signin-user').value;
    const pass = $('signin-pass').value;
    let value = '';
    if (token) value = 'Bearer ' + token;
    else if (user) value = 'Basic ' + btoa(String.fromCharCode(...new TextEncoder().encode(user + ':' + pass)));
    if (!value) return;
    sessionStorage.setItem(AUTH_KEY, value);
    $('signin-token').value = $('signin-pass').value = '';
    start();
  });
  $('signout').addEventListener('click', () => {
    sessionStorage.removeItem(AUTH_KEY);
    stream.stop();
    needSignIn('Signed out.');
  });
}

function setConn(state, text) {
  $('conn').dataset.state = state;
  $('conn').querySelector('span').textContent = text;
}

// --- formatting --------------------------------------------------------------------------

const fmtMs = (v) => (v === undefined || v === null ? '–' : v < 10 ? v.toFixed(1) + ' ms' : Math.round(v) + ' ms');
const fmtTime = (t) => new Date(t).toLocaleTimeString([], { hour12: false }) + '.' + String(new Date(t).getMilliseconds()).padStart(3, '0');
const fmtRate = (v) => (v === undefined ? '–' : v < 10 ? v.toFixed(1) : Math.round(v).toString());

function ago(t) {
  const s = Math.max(0, (Date.now() - new Date(t).getTime()) / 1000);
  if (s < 60) return Math.round(s) + ' s ago';
  if (s < 3600) return Math.round(s / 60) + ' min ago';
  return Math.round(s / 3600) + ' h ago';
}

function short(v, n = 120) {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s === undefined ? '' : s.length > n ? s.slice(0, n - 1) + '…' : s;
}

function median(xs) {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

// --- live state ---------------------------------------------------------------------------

const live = {
  rates: [], // {t, events, fired}: per-second rates from consecutive stats frames
  latencies: [], // {t, ms, ok}: event→result of each loop
  prev: null, // the previous stats frame
};

function onStats(s) {
  const t = new Date(s.at).getTime();
  if (live.prev) {
    const dt = (t - live.prev.t) / 1000;
    if (dt > 0 && s.events >= live.prev.events) {
      live.rates.push({ t, events: (s.events - live.prev.events) / dt, fired: (s.fired - live.prev.fired) / dt });
    }
  }
  live.prev = { t, events: s.events, fired: s.fired };
  trim(live.rates, t);
  const last = live.rates[live.rates.length - 1];
  $('t-events').textContent = last ? fmtRate(last.events) : '–';
  $('t-fired').textContent = last ? fmtRate(last.fired) : '–';
  $('t-results').textContent = s.results;
  $('t-inflight').textContent = s.in_flight;
  $('t-agents').textContent = s.agents_online;
  $('t-dead').textContent = s.dead_letters;
  chart.draw();
}

function trim(series, now) {
  while (series.length && series[0].t < now - WINDOW_MS) series.shift();
}

function onLoop(l, fresh) {
  if (l.ms.total !== undefined) {
    live.latencies.push({ t: new Date(l.finished_at).getTime(), ms: l.ms.total, ok: l.status === 'ok' });
    trim(live.latencies, Date.now());
    const recent = live.latencies.filter((p) => p.ok).map((p) => p.ms);
    $('t-latency').textContent = fmtMs(median(recent));
  }
  const stages = el('div', { className: 'stages', title: stageTitle(l.ms) });
  const parts = [['engine', l.ms.engine], ['network', l.ms.network], ['queue', l.ms.queue], ['start', l.ms.start], ['run', l.ms.run]];
  const sum = parts.reduce((a, [, v]) => a + (v || 0), 0);
  for (const [name, v] of parts) {
    if (!v || !sum) continue;
    const i = el('i', { className: name, title: `${name} ${fmtMs(v)}` });
    i.style.width = (100 * v) / sum + '%';
    stages.append(i);
  }
  const mode = l.status === 'ok' ? (l.cold ? 'cold' : 'warm') : '';
  const detail = l.status === 'ok' ? short(l.output, 80) : short(l.error, 120);
  const row = el('tr', { className: 'loop' + (fresh ? ' fresh' : ''), 'data-id': l.id, 'data-rule': l.rule || '', 'data-status': l.status },
    el('td', { className: 'mono dim' }, fmtTime(l.finished_at)),
    el('td', { className: 'mono' }, l.topic || el('span', { className: 'dim' }, l.rule ? '' : 'external invoke')),
    el('td', {}, l.rule || '–'),
    el('td', {}, el('span', { className: 'mono' }, l.function), l.attempts > 1 ? el('span', { className: 'badge' }, `${l.attempts} attempts`) : null,
      el('div', { className: 'dim mono' }, detail)),
    el('td', {}, l.agent || '–'),
    el('td', { className: 'st-' + l.status }, l.status, mode ? el('div', { className: 'dim' }, mode) : null),
    el('td', {}, stages, el('div', { className: 'stage-nums' }, stageTitle(l.ms))),
    el('td', { className: 'num' }, fmtMs(l.ms.total)));
  addLoopRow(row);
  if (fresh) chart.draw();
}

function stageTitle(ms) {
  const p = [];
  if (ms.engine !== undefined) p.push('engine ' + fmtMs(ms.engine));
  if (ms.network !== undefined) p.push('network ' + fmtMs(ms.network));
  p.push('queue ' + fmtMs(ms.queue), 'start ' + fmtMs(ms.start), 'run ' + fmtMs(ms.run));
  return p.join(' · ');
}

function onActuation(a, fresh) {
  const row = el('tr', { className: 'loop actuation' + (fresh ? ' fresh' : ''), 'data-id': a.id || '', 'data-line': a.line },
    el('td', { className: 'mono dim' }, fmtTime(a.at)),
    el('td', { className: 'dim' }, 'rule actuation'),
    el('td', {}, '–'),
    el('td', {}, el('span', { className: 'mono' }, `${a.line} = ${a.value}`), a.for ? el('span', { className: 'dim' }, ` for ${a.for}`) : null),
    el('td', {}, a.agent),
    el('td', { className: 'st-ok' }, 'sent'),
    el('td', { className: 'dim' }, 'direct: no function'),
    el('td', { className: 'num' }, ''));
  addLoopRow(row);
}

function addLoopRow(row) {
  const body = $('loops').tBodies[0];
  body.prepend(row);
  while (body.rows.length > MAX_LOOPS) body.deleteRow(-1);
  $('loops-empty').hidden = true;
}

function onDeadLetter(d, fresh) {
  // An invocation's dead letter, or a rule action's (actuate, publish: action and rule).
  const inv = d.invocation || { function: d.action && d.action.kind, rule: d.rule };
  const list = $('deadletters');
  if (inv.id && list.querySelector(`[data-id="${CSS.escape(inv.id)}"]`)) return; // listed and streamed
  const item = el('li', { 'data-id': inv.id || '' },
    el('span', { className: 'mono dim' }, fmtTime(d.at)), ' ',
    el('b', {}, inv.function || '?'), inv.rule ? el('span', { className: 'dim' }, ` (rule ${inv.rule})`) : null,
    el('pre', {}, d.reason + (d.tried && d.tried.length ? `\ntried: ${d.tried.join(', ')}` : '')));
  if (fresh) list.prepend(item);
  else list.append(item);
  while (list.children.length > 30) list.lastChild.remove();
  $('dead-empty').hidden = list.children.length > 0;
}

// --- the stream ---------------------------------------------------------------------------

// Stream reads GET /api/v1/events with fetch (an EventSource cannot send an Authorization
// header) and parses the server-sent events itself. It reconnects after the server's retry.
class Stream {
  constructor() {
    this.ctrl = null;
    this.retry = 2000;
    this.backlog = true;
  }

  restart() {
    this.stop();
    this.run();
  }

  stop() {
    if (this.ctrl) this.ctrl.abort();
    this.ctrl = null;
    clearTimeout(this.timer);
  }

  async run() {
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    try {
      const res = await api('/api/v1/events', { signal: ctrl.signal, headers: { Accept: 'text/event-stream' } });
      if (!res.ok) throw new Error('stream: ' + res.status);
      setConn('live', 'live');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          this.frame(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
    } catch (err) {
      if (ctrl.signal.aborted || err instanceof AuthError) return;
    }
    if (this.ctrl !== ctrl) return;
    setConn('down', 'reconnecting');
    this.backlog = true;
    this.timer = setTimeout(() => this.run(), this.retry);
  }

  frame(block) {
    let event = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const c = line.indexOf(':');
      const field = c < 0 ? line : line.slice(0, c);
      const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
    }
    if (!data.length) return;
    let v;
    try {
      v = JSON.parse(data.join('\n'));
    } catch {
      return;
    }
    // Frames before the first stats frame are the backlog the server replays.
    if (event === 'stats') this.backlog = false;
    const fresh = !this.backlog;
    if (event === 'stats') onStats(v);
    else if (event === 'loop') onLoop(v, fresh);
    else if (event === 'actuation') onActuation(v, fresh);
    else if (event === 'deadletter') onDeadLetter(v, true);
  }
}

const stream = new Stream();

// --- the chart ----------------------------------------------------------------------------

// chart draws events/s (line, left axis) and each loop's event→result latency (dots, right
// axis) over the last five minutes on a canvas. data-points says how many points it drew.
const chart = {
  pending: false,
  draw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  },
  render() {
    const c = $('chart');
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    const pad = { l: 44, r: 56, t: 10, b: 22 };
    const pw = w - pad.l - pad.r, ph = h - pad.t - pad.b;
    const now = Date.now(), t0 = now - WINDOW_MS;
    const x = (t) => pad.l + ((t - t0) / WINDOW_MS) * pw;
    const rates = live.rates.filter((p) => p.t >= t0);
    const lats = live.latencies.filter((p) => p.t >= t0);
    const maxRate = niceMax(Math.max(1, ...rates.map((p) => p.events)));
    const maxLat = niceMax(Math.max(10, ...lats.map((p) => p.ms)));
    const yr = (v) => pad.t + ph - (v / maxRate) * ph;
    const yl = (v) => pad.t + ph - (v / maxLat) * ph;

    g.font = '11px system-ui, sans-serif';
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = pad.t + (ph * i) / 4;
      g.strokeStyle = '#26332c';
      g.beginPath();
      g.moveTo(pad.l, y);
      g.lineTo(pad.l + pw, y);
      g.stroke();
      g.fillStyle = '#8da398';
      g.textAlign = 'right';
      g.fillText(fmtRate((maxRate * (4 - i)) / 4), pad.l - 6, y + 4);
      g.textAlign = 'left';
      g.fillText(Math.round((maxLat * (4 - i)) / 4) + ' ms', pad.l + pw + 6, y + 4);
    }
    g.textAlign = 'center';
    for (let m = 0; m <= 5; m++) {
      g.fillText(m === 5 ? 'now' : `-${5 - m} min`, pad.l + (pw * m) / 5, h - 6);
    }

    if (rates.length) {
      const accent = css.getPropertyValue('--accent').trim() || '#86efac';
      g.beginPath();
      rates.forEach((p, i) => (i ? g.lineTo(x(p.t), yr(p.events)) : g.moveTo(x(p.t), yr(p.events))));
      g.strokeStyle = accent;
      g.lineWidth = 1.5;
      g.stroke();
      g.lineTo(x(rates[rates.length - 1].t), pad.t + ph);
      g.lineTo(x(rates[0].t), pad.t + ph);
      g.closePath();
      g.fillStyle = 'rgba(134, 239, 172, 0.08)';
      g.fill();
    }
    for (const p of lats) {
      g.beginPath();
      g.arc(x(p.t), yl(p.ms), 3.5, 0, 2 * Math.PI);
      g.fillStyle = p.ok ? '#60a5fa' : '#f87171';
      g.fill();
    }
    c.dataset.ratePoints = rates.length;
    c.dataset.latencyPoints = lats.length;
    c.dataset.points = rates.length + lats.length;
  },
};

function niceMax(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// --- polled panels --------------------------------------------------------------------------

async function refreshAgents() {
  const { agents } = await getJSON('/api/v1/agents');
  const box = $('agents');
  box.replaceChildren(...agents.map((a) => {
    const lines = Object.entries(a.lines || {}).sort(([x], [y]) => x.localeCompare(y)).map(([name, info]) => {
      const has = info.value !== undefined && info.value !== null;
      return el('span', { className: 'line', 'data-line': name, 'data-value': has ? info.value : '' },
        el('span', {}, name), el('span', { className: 'dim' }, info.direction === 'input' ? 'in' : 'out'),
        el('span', { className: 'v' }, has ? (info.value ? 'on' : 'off') : '?'));
    });
    const labels = Object.entries(a.labels || {}).map(([k, v]) => el('span', { className: 'badge' }, `${k}=${v}`));
    return el('div', { className: 'agent', 'data-agent': a.agent, 'data-online': a.online },
      el('header', {},
        el('b', {}, a.agent),
        el('span', { className: 'badge ' + (a.online ? 'on' : 'off') }, a.online ? 'online' : 'offline'),
        a.online && !a.healthy ? el('span', { className: 'badge bad' }, 'unhealthy') : null,
        el('span', { className: 'meta' }, `${a.in_flight} in flight · seen ${ago(a.last_seen)}` + (a.version ? ` · ${a.version}` : ''))),
      a.problem ? el('div', { className: 'problem' }, a.problem) : null,
      el('div', {}, labels, (a.runtimes || []).map((r) => el('span', { className: 'badge' }, 'runtime ' + r))),
      lines.length ? el('div', { className: 'lines' }, lines) : null);
  }));
  $('agents-empty').hidden = agents.length > 0;
}

let functionNames = [];

async function refreshRules() {
  const r = await getJSON('/api/v1/rules');
  functionNames = r.functions;
  $('rules').tBodies[0].replaceChildren(...r.rules.map((x) => el('tr', { 'data-rule': x.name },
    el('td', {}, el('b', {}, x.name), x.description ? el('div', { className: 'dim' }, x.description) : null),
    el('td', { className: 'mono' }, x.on.join(' ')),
    el('td', { className: 'num' }, x.matched),
    el('td', { className: 'num' }, x.fired),
    el('td', { className: 'num' }, x.throttled),
    el('td', { className: 'num' + (x.errors ? ' st-error' : '') }, x.errors),
    el('td', { className: 'num' }, x.keys),
    el('td', { className: 'mono' }, x.last_error ? [el('span', { className: 'st-error' }, x.last_error), el('div', { className: 'dim' }, `${x.last_error_topic} · ${ago(x.last_error_at)}`)] : '–'))));
  const lr = r.last_reload;
  $('rules-reload').textContent = !lr ? r.files.join(', ') : lr.error ? `last reload failed ${ago(lr.at)}: ${lr.error}` : `reloaded ${ago(lr.at)}`;
}

async function refreshFunctions() {
  const { invocations } = await getJSON('/api/v1/invocations?limit=1000');
  const by = new Map(functionNames.map((n) => [n, []]));
  for (const i of invocations) {
    if (!by.has(i.function)) by.set(i.function, []);
    by.get(i.function).push(i);
  }
  $('functions').tBodies[0].replaceChildren(...[...by.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, runs]) => {
    const ok = runs.filter((r) => r.status === 'ok');
    const last = runs[0];
    return el('tr', { 'data-function': name },
      el('td', { className: 'mono' }, name),
      el('td', { className: 'num' }, runs.length),
      el('td', { className: 'num st-ok' }, ok.length),
      el('td', { className: 'num' + (runs.length - ok.length ? ' st-error' : '') }, runs.length - ok.length),
      el('td', { className: 'num' }, ok.filter((r) => r.cold).length),
      el('td', { className: 'num' }, fmtMs(median(ok.map((r) => r.timings_ms.total)))),
      el('td', { className: 'dim' }, last ? `${last.status} ${ago(last.finished_at)}` : 'never'));
  }));
}

async function refreshDeadLetters() {
  const { dead_letters: list } = await getJSON('/api/v1/deadletters');
  $('deadletters').replaceChildren();
  for (const d of list) onDeadLetter(d, false);
  $('dead-empty').hidden = list.length > 0;
}

async function refreshAll() {
  const jobs = [refreshAgents(), refreshRules().then(refreshFunctions), refreshDeadLetters()];
  for (const r of await Promise.allSettled(jobs)) {
    if (r.status === 'rejected' && !(r.reason instanceof AuthError)) console.warn('refresh:', r.reason);
  }
  if (!signedOut) $('signout').hidden = !authHeader();
}

// --- dry run --------------------------------------------------------------------------------

function setupDryRun() {
  $('dryrun').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const out = $('dryrun-result');
    const text = $('dry-payload').value;
    let payload;
    try {
      payload = JSON.parse(text);
    } catch {
      payload = text; // not JSON: the payload's text
    }
    out.replaceChildren(el('p', { className: 'dim' }, 'evaluating…'));
    try {
      const res = await api('/api/v1/dryrun', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ topic: $('dry-topic').value.trim(), payload }),
      });
      const body = await res.json();
      if (!res.ok) {
        out.replaceChildren(el('p', { className: 'error' }, body.error || res.status));
        return;
      }
      if (!body.firings.length) {
        out.replaceChildren(el('p', { className: 'dim', 'data-firings': 0 }, 'No rule fires for this event (its state starts empty).'));
        return;
      }
      out.replaceChildren(el('p', { className: 'dim', 'data-firings': body.firings.length }, `${body.firings.length} rule(s) fire:`),
        ...body.firings.map((f) => el('div', { className: 'firing', 'data-rule': f.rule },
          el('b', {}, f.rule), el('span', { className: 'dim' }, ` key ${f.key}`),
          el('pre', {}, f.actions.map((a) => `${a.kind} ${JSON.stringify(Object.fromEntries(Object.entries(a).filter(([k]) => k !== 'kind')))}`).join('\n')))));
    } catch (err) {
      if (!(err instanceof AuthError)) out.replaceChildren(el('p', { className: 'error' }, String(err)));
    }
  });
}

// --- start ----------------------------------------------------------------------------------

// start asks the API once (so wrong credentials cost one failed authentication, not one per
// panel), then loads every panel and opens the stream.
async function start() {
  try {
    await refreshAgents();
  } catch (err) {
    if (!(err instanceof AuthError)) {
      setConn('down', 'engine unreachable');
      setTimeout(start, 2000);
    }
    return;
  }
  signedOut = false;
  $('signin').hidden = true;
  refreshAll();
  stream.restart();
}

function main() {
  setupSignIn();
  setupDryRun();
  start();
  setInterval(() => { if (!signedOut && !document.hidden) refreshAgents().catch(() => {}); }, 2000);
  setInterval(() => { if (!signedOut && !document.hidden) refreshRules().then(refreshFunctions).catch(() => {}); }, 3000);
  setInterval(() => chart.draw(), 5000); // keeps the time axis moving when nothing arrives
  window.addEventListener('resize', () => chart.draw());
}

main();
