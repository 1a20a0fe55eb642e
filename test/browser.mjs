// What the Chromium tests share: playwright-core loaded from PLAYWRIGHT_DIR, Debian's
// chromium launched headless (CHROMIUM, default /usr/bin/chromium), a report of timed
// steps, and the one-JSON-line outcome the Go side reads (test/console_test.go runBrowser).

import { createRequire } from 'node:module';
import path from 'node:path';

// fail prints the failed outcome and exits 1.
export function fail(msg) {
  console.log(JSON.stringify({ ok: false, error: msg }));
  process.exit(1);
}

// newReport returns the report (extra fields merged in), its step function and the
// seconds elapsed since.
export function newReport(extra = {}) {
  const t0 = Date.now();
  const elapsed = () => (Date.now() - t0) / 1000;
  const report = { ok: true, steps: [], ...extra };
  const step = (name, more = {}) => report.steps.push({ name, at_s: Number(elapsed().toFixed(2)), ...more });
  return { report, step, elapsed };
}

// launch starts the browser, or fails with the reason.
export async function launch(env) {
  if (!env.PLAYWRIGHT_DIR) fail('PLAYWRIGHT_DIR is not set');
  const require = createRequire(path.join(env.PLAYWRIGHT_DIR, 'package.json'));
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (err) {
    fail(`playwright-core is not installed in ${env.PLAYWRIGHT_DIR}: ${err.message}`);
  }
  const exe = env.CHROMIUM || '/usr/bin/chromium';
  return chromium.launch({
    executablePath: exe,
    // Without the background-networking flags Chromium keeps opening refused connections.
    // playwright adds --headless and a fresh user data dir of its own.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    timeout: 60000,
  }).catch((err) => fail(`cannot launch ${exe}: ${err.message}`));
}
