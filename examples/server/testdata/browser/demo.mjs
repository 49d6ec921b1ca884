// Drives the demo page of examples/server in headless Chromium through
// playwright-core (no browser download: the system's Chromium is used).
//
//   node demo.mjs <baseURL> [scenario...]
//
// It runs the named scenarios (default: all) one after the other, each in a
// fresh browser context, and prints one JSON line per scenario to stdout:
// {"scenario", "ok", "ms", "error", "state"}. It exits 1 if any failed.
// Environment: CHROMIUM (default /usr/bin/chromium), SCREENSHOTS (a
// directory: a full-page PNG per scenario is written there).
//
// The Go test browser_test.go starts the server and runs this script. The
// "cut" scenario uses the test server's hooks: POST /__test/record?on=1|0
// switches the recording of stream requests, which the Go test checks
// afterwards; POST /__test/cut closes the recorded SSE connections (with
// ?rejectNext=1 the next stream request gets 503, with ?rewind=N its cursor
// is moved N events back).
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const [base, ...wanted] = process.argv.slice(2);
const TIMEOUT = 15000;
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--disable-dev-shm-usage',
];

// start opens the page and starts a task from the form.
async function start(page, { type, input, transport = 'auto', user }) {
  await page.goto(`${base}/`);
  await page.waitForSelector('body[data-ready="true"]');
  if (user !== undefined) await page.fill('#user', user);
  await page.selectOption('#taskType', type);
  if (input !== undefined) await page.fill('#input', JSON.stringify(input));
  await page.selectOption('#transport', transport);
  await page.click('#start');
  await page.waitForFunction(() => document.getElementById('taskId').textContent !== '—', null, { timeout: TIMEOUT });
}

const waitStatus = (page, status) => page.waitForSelector(`#status[data-status="${status}"]`, { timeout: TIMEOUT });

// entries returns the event log as shown: one entry per event line.
const entries = (page) =>
  page.$$eval('#log li[data-event-id]', (lis) =>
    lis.map((li) => ({ id: li.dataset.eventId, type: li.dataset.type, text: li.textContent })),
  );

const text = (page, sel) => page.$eval(sel, (el) => el.textContent);

// checkLog asserts that every event is shown once, in order (ids 1..n
// without gaps or repeats), with the given types.
async function checkLog(page, types) {
  const log = await entries(page);
  assert.deepEqual(
    log.map((e) => e.id),
    log.map((_, i) => String(i + 1)),
    'event ids must be 1..n, each once',
  );
  assert.deepEqual(
    log.map((e) => e.type),
    types,
  );
  return log;
}

async function noError(page) {
  assert.equal(await text(page, '#error'), '', 'the error line must be empty');
}

// hook calls a hook of the Go test server and returns its answer.
async function hook(path) {
  const resp = await fetch(`${base}${path}`, { method: 'POST' });
  assert.equal(resp.status, 200, `${path}: ${resp.status}`);
  return resp.text();
}

const repeat = (x, n) => Array.from({ length: n }, () => x);

// approval: approve (or reject) a suspended task over the given transport.
async function approval(page, transport, action) {
  await start(page, { type: 'approval', input: { ttlMs: 60000 }, transport });
  await page.waitForSelector(`#${action}:enabled`, { timeout: TIMEOUT });
  assert.equal(await text(page, '#status'), 'SUSPENDED');
  assert.match(await text(page, '#question'), /approve/i);
  await page.click(`#${action}`);
  await waitStatus(page, 'COMPLETED');
  await checkLog(page, ['TASK_STARTED', 'TASK_SUSPENDED', 'TASK_ACTION_ACCEPTED', 'TASK_COMPLETED']);
  assert.equal(await text(page, '#result'), JSON.stringify({ approved: action === 'approve' }));
  assert.equal(await page.isHidden('#suspension'), true);
  assert.equal(await page.isDisabled('#cancel'), true);
  assert.equal(await text(page, '#activeTransport'), transport === 'auto' ? 'sse' : transport);
  await noError(page);
}

const scenarios = {
  // (a) Start an approval task, click Approve, see COMPLETED.
  approve: (page) => approval(page, 'auto', 'approve'),
  'reject-ws': (page) => approval(page, 'ws', 'reject'),
  'approve-poll': (page) => approval(page, 'poll', 'approve'),

  // A greet task with a live progress bar.
  greet: async (page) => {
    await start(page, { type: 'greet', input: { name: 'Ada', steps: 4, stepDelayMs: 50 } });
    await waitStatus(page, 'COMPLETED');
    await checkLog(page, ['TASK_STARTED', ...repeat('TASK_PROGRESS', 4), 'TASK_COMPLETED']);
    assert.equal(await page.$eval('#progress', (el) => el.value), 100);
    assert.equal(await text(page, '#result'), JSON.stringify({ greeting: 'Hello, Ada!' }));
    await noError(page);
  },

  // SSE refused (here by the browser itself): the page falls back to the
  // WebSocket and still shows every event once.
  fallback: async (page) => {
    await page.route('**/events/stream**', (route) => route.abort('connectionrefused'));
    await start(page, { type: 'greet', input: { name: 'Bo', steps: 3, stepDelayMs: 20 } });
    await waitStatus(page, 'COMPLETED');
    await checkLog(page, ['TASK_STARTED', ...repeat('TASK_PROGRESS', 3), 'TASK_COMPLETED']);
    assert.equal(await text(page, '#activeTransport'), 'ws');
    const notes = await page.$$eval('#log li.note', (lis) => lis.map((li) => li.textContent));
    assert.ok(notes.some((n) => n.includes('falling back to ws')), `notes: ${notes}`);
  },

  // (b) Break the SSE connection twice mid-stream: the first time the
  // browser reconnects by itself (Last-Event-ID header), the second time
  // the reconnect is refused and the page reconnects (lastEventId query).
  // The first reconnect is rewound by the test server, so the page receives
  // events it has shown already and must drop them. Every event is shown
  // exactly once, in order.
  cut: async (page) => {
    const count = 100;
    await hook('/__test/record?on=1');
    await start(page, { type: 'stream', input: { count, intervalMs: 100 } });
    const messages = (n) =>
      page.waitForFunction((k) => document.querySelectorAll('#log li[data-type="TASK_MESSAGE"]').length >= k, n, {
        timeout: TIMEOUT,
      });
    const cut = async (query) => Number(await hook(`/__test/cut${query}`));
    await messages(5);
    // The browser's reconnect is answered from 3 events before its
    // Last-Event-ID: the page must drop those duplicates.
    assert.equal(await cut('?rewind=3'), 1, 'one SSE connection to cut');
    await page.waitForFunction(() => Number(document.getElementById('reconnects').textContent) >= 1, null, {
      timeout: TIMEOUT,
    });
    // Resumed: new messages arrive after the reconnect.
    const before = await page.$$eval('#log li[data-type="TASK_MESSAGE"]', (lis) => lis.length);
    await messages(before + 3);
    assert.equal(await cut('?rejectNext=1'), 1, 'one SSE connection to cut');
    await waitStatus(page, 'COMPLETED');
    const log = await checkLog(page, ['TASK_STARTED', ...repeat('TASK_MESSAGE', count), 'TASK_COMPLETED']);
    log.slice(1, count + 1).forEach((e, i) => assert.ok(e.text.includes(`"message ${i + 1} of ${count}"`), e.text));
    assert.ok(Number(await text(page, '#reconnects')) >= 2, 'the page reconnected twice');
    assert.equal(await text(page, '#activeTransport'), 'sse');
    await noError(page);
    await hook('/__test/record?on=0');
  },

  // (c) Cancel a running task and see CANCELLED.
  cancel: async (page) => {
    await start(page, { type: 'greet', input: { name: 'Cy', steps: 5, stepDelayMs: 60000 } });
    await waitStatus(page, 'RUNNING');
    await page.click('#cancel:enabled');
    await waitStatus(page, 'CANCELLED');
    const log = await checkLog(page, ['TASK_STARTED', 'TASK_CANCELLED']);
    assert.ok(log[1].text.includes('"reason":"cancelled from the demo page"'), log[1].text);
    assert.equal(await page.isDisabled('#cancel'), true);
    await noError(page);
  },

  // A failing request shows a clear error line.
  errors: async (page) => {
    await page.goto(`${base}/`);
    await page.waitForSelector('body[data-ready="true"]');
    await page.fill('#input', '{"steps":"x"}');
    await page.click('#start');
    await page.waitForFunction(() => document.getElementById('error').textContent !== '', null, { timeout: TIMEOUT });
    const err = await text(page, '#error');
    assert.match(err, /422 REQUEST_VALIDATION_ERROR/);
    assert.match(err, /input\.steps/);
    assert.equal(await text(page, '#taskId'), '—');

    await page.fill('#input', '{not json');
    await page.click('#start');
    await page.waitForFunction(() => document.getElementById('error').textContent.includes('not valid JSON'), null, {
      timeout: TIMEOUT,
    });

    // A failed task is not a failed request: its failure is shown as the result.
    await page.selectOption('#taskType', 'fail');
    await page.fill('#input', '{}');
    await page.click('#start');
    await waitStatus(page, 'FAILED');
    await checkLog(page, ['TASK_STARTED', 'TASK_FAILED']);
    assert.match(await text(page, '#result'), /^DEMO_FAILURE: /);
    await noError(page);
  },
};

async function runScenario(browser, name) {
  const started = Date.now();
  const result = { scenario: name, ok: false };
  const pageErrors = [];
  const context = await browser.newContext();
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  try {
    await scenarios[name](page);
    assert.deepEqual(pageErrors, [], 'uncaught errors in the page');
    result.ok = true;
  } catch (err) {
    result.error = String(err.stack || err);
    result.pageErrors = pageErrors;
    result.state = await page
      .evaluate(() => ({
        status: document.getElementById('status').textContent,
        transport: document.getElementById('activeTransport').textContent,
        reconnects: document.getElementById('reconnects').textContent,
        error: document.getElementById('error').textContent,
        log: [...document.querySelectorAll('#log li')].map((li) => li.textContent),
      }))
      .catch((e) => `page state unavailable: ${e}`);
  } finally {
    if (process.env.SCREENSHOTS) {
      await page.screenshot({ path: `${process.env.SCREENSHOTS}/${name}.png`, fullPage: true }).catch(() => {});
    }
    await context.close();
  }
  result.ms = Date.now() - started;
  return result;
}

async function main() {
  const names = wanted.length > 0 ? wanted : Object.keys(scenarios);
  const unknown = names.filter((n) => !scenarios[n]);
  if (!base || unknown.length > 0) {
    console.error(`usage: node demo.mjs <baseURL> [${Object.keys(scenarios).join('|')}...]`);
    process.exit(2);
  }
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ARGS,
    timeout: TIMEOUT,
  });
  try {
    for (const name of names) {
      const result = await runScenario(browser, name);
      console.log(JSON.stringify(result));
      if (!result.ok) process.exitCode = 1;
    }
  } finally {
    await browser.close();
  }
}

await main();
