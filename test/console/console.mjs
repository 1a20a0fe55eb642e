// Drives the web console in headless Chromium (Debian's, through playwright-core) and
// checks what a user would see. Run by test/console_test.go; every input is an environment
// variable, the outcome is one JSON line on stdout, and any failure exits 1 with a reason.
//
//   CONSOLE_URL         the console, e.g. http://127.0.0.1:8080/
//   CONSOLE_MODE        demo: the open demo API (agents gh1-edge..gh3-edge, live loops, chart, dry run)
//                       signin: an API that needs credentials; CONSOLE_TOKEN is a viewer token
//   CHROMIUM            the browser (default /usr/bin/chromium)
//   PLAYWRIGHT_DIR      folder holding node_modules/playwright-core
//   SCREENSHOT          PNG file to write (full page), optional
//   SCREENSHOT_AFTER_S  demo mode: seconds to let the console fill before the screenshot

import { fail, launch, newReport } from '../browser.mjs';

const env = process.env;
const url = env.CONSOLE_URL;
const mode = env.CONSOLE_MODE || 'demo';
if (!url) fail('CONSOLE_URL is not set');

const { report, step, elapsed } = newReport({ mode });
const browser = await launch(env);

const errors = [];
let code = 0;
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
  page = await context.newPage();
  // 401s before signing in are the page asking; anything else on the console is an error.
  const expected401 = (m) => mode === 'signin' && /status of 401/.test(m.text()) && /\/api\/v1\//.test(m.location().url || '');
  page.on('console', (m) => {
    if ((m.type() === 'error' || m.type() === 'warning') && !expected401(m)) errors.push(`console ${m.type()}: ${m.text()} (${m.location().url || ''})`);
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    const f = r.failure();
    // The stream's fetch is aborted when the page closes.
    if (!(f && /ERR_ABORTED/.test(f.errorText))) errors.push(`request failed: ${r.url()} ${f && f.errorText}`);
  });

  const resp = await page.goto(url, { waitUntil: 'load' });
  if (!resp || resp.status() !== 200) throw new Error(`GET ${url}: ${resp && resp.status()}`);
  step('page loaded');

  if (mode === 'signin') await signin(page);
  else await demo(page);

  if (errors.length) throw new Error('errors on the page:\n' + errors.join('\n'));
  if (env.SCREENSHOT) {
    await page.screenshot({ path: env.SCREENSHOT, fullPage: true });
    step('screenshot', { path: env.SCREENSHOT });
  }
  await context.close();
} catch (err) {
  report.ok = false;
  report.error = err.message;
  report.page_errors = errors;
  code = 1;
  if (page && env.SCREENSHOT) {
    const shot = env.SCREENSHOT.replace(/\.png$/, '') + '-failed.png';
    await page.screenshot({ path: shot, fullPage: true }).then(() => { report.failed_screenshot = shot; }, () => {});
  }
} finally {
  await browser.close();
}
report.seconds = Number(elapsed().toFixed(2));
console.log(JSON.stringify(report));
process.exit(code);

async function demo(page) {
  // The demo's agents, one per greenhouse, each with its output line and the value it reported.
  for (const [id, line] of [['gh1-edge', 'fan'], ['gh2-edge', 'heater'], ['gh3-edge', 'valve']]) {
    const agent = page.locator(`#agents .agent[data-agent="${id}"][data-online="true"]`);
    await agent.waitFor({ timeout: 60000 });
    await agent.locator(`.line[data-line="${line}"]:is([data-value="0"], [data-value="1"])`).waitFor({ timeout: 10000 });
  }
  report.lines = await page.locator('#agents .agent .line').evaluateAll((ls) => Object.fromEntries(ls.map((l) => [l.dataset.line, Number(l.dataset.value)])));
  step('agent and lines', { lines: report.lines });

  // The stream is live, and a loop arrives while the page is open: an invocation that came
  // back ok, with its stages.
  await page.locator('#conn[data-state="live"]').waitFor({ timeout: 20000 });
  const loop = page.locator('#loops tbody tr.loop.fresh[data-status="ok"]:not(.actuation)').first();
  await loop.waitFor({ timeout: 90000 });
  report.loop = await loop.evaluate((r) => ({
    rule: r.dataset.rule, cells: [...r.cells].map((c) => c.textContent.trim()),
    stages: [...r.querySelectorAll('.stages i')].map((i) => i.className),
  }));
  if (!report.loop.rule) throw new Error('the live loop names no rule: ' + JSON.stringify(report.loop));
  if (!report.loop.stages.includes('start')) throw new Error('the live loop shows no start stage: ' + JSON.stringify(report.loop));
  step('live loop', { rule: report.loop.rule });

  // The chart: events/s from three stats frames at least, and the loop's latency.
  await page.waitForFunction(() => {
    const c = document.getElementById('chart');
    return Number(c.dataset.ratePoints) >= 3 && Number(c.dataset.latencyPoints) >= 1;
  }, null, { timeout: 30000 });
  report.chart = await page.locator('#chart').evaluate((c) => ({ ...c.dataset }));
  step('chart', report.chart);
  const tiles = await page.locator('#t-events').textContent();
  if (!/^\d/.test(tiles)) throw new Error(`events/s tile shows ${tiles}`);

  // Rules and functions panels.
  await page.locator('#rules tr[data-rule="greenhouse-frost"]').waitFor();
  await page.locator('#functions tr[data-function="irrigate"]').waitFor();

  // A dry run of frost in gh2: greenhouse-cold fires, actuating the heater, and
  // greenhouse-frost publishes an alert.
  await page.fill('#dry-topic', 'greenhouse/gh2/climate');
  await page.fill('#dry-payload', '{"celsius": 1.5, "humidity": 80}');
  await page.click('#dryrun button[type="submit"]');
  const cold = page.locator('#dryrun-result .firing[data-rule="greenhouse-cold"]');
  await cold.waitFor({ timeout: 10000 });
  const frost = page.locator('#dryrun-result .firing[data-rule="greenhouse-frost"]');
  await frost.waitFor({ timeout: 10000 });
  report.dryrun = (await cold.textContent()) + ' ' + (await frost.textContent());
  if (!/actuate/.test(report.dryrun) || !/heater/.test(report.dryrun) || !/publish/.test(report.dryrun)) {
    throw new Error('dry run shows: ' + report.dryrun);
  }
  step('dry run');

  const wait = Number(env.SCREENSHOT_AFTER_S || 0);
  if (wait > 0) {
    await page.waitForTimeout(wait * 1000);
    step('waited for the screenshot', { seconds: wait });
  }
}

async function signin(page) {
  // Without credentials the page asks for them and shows no data.
  await page.locator('#signin:not([hidden])').waitFor({ timeout: 10000 });
  await page.locator('#conn[data-state="auth"]').waitFor({ timeout: 10000 });
  if (await page.locator('#rules tbody tr').count()) throw new Error('rules shown without credentials');
  step('asked for credentials');

  await page.fill('#signin-token', 'wrong-token');
  await page.click('#signin-form button[type="submit"]');
  await page.locator('#signin:not([hidden])').waitFor({ timeout: 10000 });
  await page.waitForFunction(() => /unknown token/.test(document.getElementById('signin-why').textContent), null, { timeout: 10000 });
  step('wrong token refused');

  await page.fill('#signin-token', env.CONSOLE_TOKEN);
  await page.click('#signin-form button[type="submit"]');
  await page.locator('#signin[hidden]').waitFor({ state: 'attached', timeout: 10000 });
  await page.locator('#rules tr[data-rule="greenhouse-frost"]').waitFor({ timeout: 10000 });
  await page.locator('#conn[data-state="live"]').waitFor({ timeout: 10000 });
  await page.waitForFunction(() => Number(document.getElementById('chart').dataset.ratePoints) >= 1, null, { timeout: 15000 });
  step('signed in: rules and a live stream');

  // Kept for this tab only: in session storage, not in local storage or a cookie.
  const stored = await page.evaluate(() => ({
    session: sessionStorage.getItem('deviceless.authorization'), local: localStorage.length, cookies: document.cookie,
  }));
  if (stored.session !== 'Bearer ' + env.CONSOLE_TOKEN || stored.local !== 0 || stored.cookies !== '') {
    throw new Error('credentials stored as ' + JSON.stringify(stored));
  }
  // A reload keeps them; the dry run goes through with them.
  await page.reload({ waitUntil: 'load' });
  await page.locator('#conn[data-state="live"]').waitFor({ timeout: 10000 });
  await page.click('#dryrun button[type="submit"]');
  await page.locator('#dryrun-result .firing[data-rule="greenhouse-frost"]').waitFor({ timeout: 10000 });
  step('reloaded: still signed in, dry run');

  await page.click('#signout');
  await page.locator('#signin:not([hidden])').waitFor({ timeout: 10000 });
  if (await page.evaluate(() => sessionStorage.length)) throw new Error('credentials kept after signing out');
  step('signed out');
}
