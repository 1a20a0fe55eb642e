// Opens the Node-RED editor in headless Chromium (Debian's, through playwright-core) as a
// user would, and checks the Deviceless nodes there. Run by test/noderednodes_test.go;
// inputs are environment variables, the outcome is one JSON line on stdout, and any
// failure exits 1 with a reason.
//
//   NODERED_URL           the editor, e.g. http://127.0.0.1:1880
//   DLX_FUNCTION_NODE     id of a deployed `deviceless function` node with inline code
//   DLX_ENGINE_NODE       id of its `deviceless-engine` config node
//   DLX_EXPECT_FUNCTIONS  comma-separated entries the function list must show (name, name@N)
//   DLX_EXPECT_CODE       text the code editor must show
//   CHROMIUM              the browser (default /usr/bin/chromium)
//   PLAYWRIGHT_DIR        folder holding node_modules/playwright-core
//   SCREENSHOT            PNG file to write of the node's form (the package README's), optional

import { fail, launch, newReport } from '../browser.mjs';

const env = process.env;
for (const k of ['NODERED_URL', 'DLX_FUNCTION_NODE', 'DLX_ENGINE_NODE']) {
  if (!env[k]) fail(`${k} is not set`);
}

const { report, step, elapsed } = newReport();
const byId = (id) => `[id="${id}"]`;
const browser = await launch(env);

const errors = [];
let code = 0;
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 860 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /deviceless/i.test(m.text() + (m.location().url || ''))) errors.push(`console error: ${m.text()}`);
  });
  page.setDefaultTimeout(30000);

  await page.goto(env.NODERED_URL, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('.red-ui-palette-node[data-palette-type="deviceless function"]');
  await page.waitForSelector('.red-ui-palette-node[data-palette-type="deviceless event"]');
  step('palette shows deviceless function and deviceless event');
  // Each node's help for the sidebar came with its definition.
  for (const type of ['deviceless function', 'deviceless event', 'deviceless-engine']) {
    const help = await page.evaluate((t) => {
      const el = document.querySelector(`script[data-help-name="${t}"]`);
      return el ? el.textContent : '';
    }, type);
    if (!/<h3>|<p>/.test(help)) throw new Error(`no help text for ${type}`);
  }
  step('help text of the three nodes loaded');

  // The deployed node on the workspace: a double-click opens its form.
  const nodeSel = `${byId(env.DLX_FUNCTION_NODE)}.red-ui-flow-node`;
  await page.waitForSelector(nodeSel);
  await page.dblclick(`${nodeSel} .red-ui-flow-node`);
  await page.waitForSelector('#node-input-mode');
  if ((await page.inputValue('#node-input-mode')) !== 'inline') throw new Error('the form does not show the inline mode');
  if ((await page.inputValue('#node-input-runtime')) !== 'python3') throw new Error('the form does not show runtime python3');
  await page.waitForSelector('#node-input-code-editor .view-lines');
  const want = env.DLX_EXPECT_CODE || '';
  await page.waitForFunction((w) => {
    const el = document.querySelector('#node-input-code-editor .view-lines');
    return el && el.innerText.replace(/\u00a0/g, ' ').includes(w);
  }, want);
  step('form open: inline python3 code in the code editor');
  if (env.SCREENSHOT) {
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await page.screenshot({ path: env.SCREENSHOT });
    step(`screenshot ${env.SCREENSHOT}`);
  }

  // "one the engine has": the list comes from the engine through the config node.
  await page.selectOption('#node-input-mode', 'existing');
  await page.waitForFunction(() => /\d+ functions/.test(document.querySelector('#node-input-function-note').textContent));
  report.functions = await page.$$eval('#node-input-function option', (os) => os.map((o) => o.value));
  for (const f of (env.DLX_EXPECT_FUNCTIONS || '').split(',').filter(Boolean)) {
    if (!report.functions.includes(f)) throw new Error(`function list ${JSON.stringify(report.functions)} lacks ${f}`);
  }
  step(`function list loaded from the engine: ${report.functions.length} entries`);

  // The engine's config node: its test button, with the credentials Node-RED stores.
  await page.click('#node-input-btn-engine-edit');
  await page.waitForSelector('#node-config-deviceless-test');
  // Node-RED never sends a stored password to the browser.
  if (env.DLX_PASSWORD && (await page.inputValue('#node-config-input-password')) === env.DLX_PASSWORD) {
    throw new Error('the password is shown in the form');
  }
  await page.click('#node-config-deviceless-test');
  await page.waitForFunction(() => /^(connected|unreachable|refused)/.test(document.querySelector('#node-config-deviceless-test-result').textContent));
  report.test = await page.textContent('#node-config-deviceless-test-result');
  if (!report.test.startsWith('connected:')) throw new Error(`test connection: ${report.test}`);
  step('test connection: ' + report.test);
  // Leave without changing anything.
  await page.click('#node-config-dialog-cancel');
  await page.click('#node-dialog-cancel');
  if (errors.length) throw new Error(errors.join('; '));
  report.seconds = elapsed();
} catch (err) {
  report.ok = false;
  report.error = err.message + (errors.length ? ` (${errors.join('; ')})` : '');
  code = 1;
}
await browser.close();
console.log(JSON.stringify(report));
process.exit(code);
