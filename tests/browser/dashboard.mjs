// The dashboard (`/ui`) in a real browser: Debian's Chromium, headless, driven by
// playwright-core. Run by tests/all/dashboard.rs, which starts the server and sets it up;
// by hand:
//
//   scripts/browser-deps.sh
//   WISP_URL=http://127.0.0.1:8080 ADMIN_KEY=… READ_KEY=… OTHER_KEY=… SHOTS_DIR=/tmp/shots \
//     node tests/browser/dashboard.mjs
//
// What the server must hold first: the example app (examples/hello) with `greet` at two
// versions, the second live and greeting with `Howdy` (the first with `Greetings`);
// READ_KEY a `read` key of the same namespace; OTHER_KEY a key of another namespace, which
// holds no function. With DEAD_LETTER=FUNCTION/ID, that dead letter is redriven from its
// page (the function must succeed this time).
//
// Prints one line per step and exits 1 at the first failure, naming it; every page visited
// is a full-page PNG in SHOTS_DIR (NN-what.png, in the order visited), the failing one too.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`dashboard.mjs: set ${name} (see the comment at the top)`);
    process.exit(2);
  }
  return value;
};
const base = env('WISP_URL').replace(/\/$/, '');
const adminKey = env('ADMIN_KEY');
const readKey = env('READ_KEY');
const otherKey = env('OTHER_KEY');
const shotsDir = env('SHOTS_DIR');
const deadLetter = process.env.DEAD_LETTER; // FUNCTION/ID, optional
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';

mkdirSync(shotsDir, { recursive: true });

class Failure extends Error {}

function check(condition, message) {
  if (!condition) throw new Failure(message);
}

/**
 * Waits up to `ms` for `probe` to return something truthy, loading `path` again between
 * tries (logs and invocation records reach the store a moment after the invocation answers).
 */
async function eventually(page, path, probe, message, ms = 10_000) {
  const until = Date.now() + ms;
  for (;;) {
    const got = await probe();
    if (got) return got;
    if (Date.now() > until) throw new Failure(message);
    await page.waitForTimeout(200);
    await page.goto(base + path);
  }
}

let shots = 0;
/** A full-page screenshot of what `page` shows now. */
async function shot(page, what) {
  shots += 1;
  const file = join(shotsDir, `${String(shots).padStart(2, '0')}-${what}.png`);
  await page.screenshot({ path: file, fullPage: true });
}

/** Loads `path`; asserts the final status (after redirects) and, if given, the final path. */
async function visit(page, path, { status = 200, lands, what }) {
  const response = await page.goto(base + path);
  await shot(page, what);
  check(response, `no response for ${path}`);
  check(
    response.status() === status,
    `GET ${path}: expected ${status}, got ${response.status()} at ${page.url()}`,
  );
  if (lands) {
    const at = new URL(page.url()).pathname;
    check(at === lands, `GET ${path}: expected to land on ${lands}, landed on ${at}`);
  }
  return response;
}

/** Clicks `button` (which submits a form) and waits for the page it leads to. */
async function submit(page, button, what) {
  const [response] = await Promise.all([page.waitForNavigation(), button.click()]);
  await shot(page, what);
  return response;
}

async function login(page, key, who) {
  await visit(page, '/ui', { lands: '/ui/login', what: `${who}-login` });
  await page.fill('#key', key);
  const response = await submit(page, page.locator('#login'), `${who}-functions`);
  check(response.status() === 200, `logging in as ${who}: got ${response.status()}`);
  const at = new URL(page.url()).pathname;
  check(at === '/ui/functions', `logging in as ${who} landed on ${at}, not /ui/functions`);
}

/** The value of the page's first csrf field (every page has one: the logout form). */
async function csrfOf(page) {
  const field = page.locator('input[name="csrf"]');
  check(await field.count(), `${page.url()} has no csrf field`);
  const value = await field.first().getAttribute('value');
  check(value, `${page.url()} has no csrf field`);
  return value;
}

/** POSTs a form with the page's session cookie, not following redirects. */
async function post(page, path, form) {
  return page.request.post(base + path, { form, maxRedirects: 0 });
}

/** Adds a form to the page (as a forger would) and submits it: the browser's own POST. */
async function forgeForm(page, action, fields, what) {
  await page.evaluate(
    ({ action, fields }) => {
      const form = document.createElement('form');
      form.method = 'post';
      form.action = action;
      for (const [name, value] of Object.entries(fields)) {
        const input = document.createElement('input');
        input.type = 'hidden';
        input.name = name;
        input.value = value;
        form.append(input);
      }
      const button = document.createElement('button');
      button.id = 'forged';
      form.append(button);
      document.body.append(form);
    },
    { action, fields },
  );
  return submit(page, page.locator('#forged'), what);
}

/** Asserts the page is an error page with `status`; a logged-in one keeps its <nav> and logout. */
async function refused(page, response, status, what, { loggedIn = true } = {}) {
  check(response.status() === status, `${what}: expected ${status}, got ${response.status()}`);
  check(await page.locator('p.error').count(), `${what}: the ${status} page has no <p class="error">`);
  if (loggedIn) await chrome(page, `${what}: the ${status} page`);
}

/** Asserts the page has the <nav> and the logout form that every logged-in page has. */
async function chrome(page, what) {
  check(await page.locator('nav').count(), `${what} has no <nav>`);
  check(
    await page.locator('form[method="post"][action="/ui/logout"] #logout').count(),
    `${what} has no logout form`,
  );
}

async function greetVersions(page) {
  return page.locator('#versions tr[data-version]').evaluateAll((rows) =>
    rows.map((row) => ({
      version: row.dataset.version,
      rollback: row.querySelector('form.rollback') !== null,
    })),
  );
}

async function main(browser) {
  let page;
  let failed = 0;
  const step = async (name, body) => {
    if (failed) return;
    try {
      await body();
      console.log(`ok      ${name}`);
    } catch (e) {
      failed += 1;
      console.log(`FAILED  ${name}: ${e instanceof Failure ? e.message : e.stack}`);
      if (page && !page.isClosed()) {
        await shot(page, 'failure').catch(() => {});
        console.log(`        at ${page.url()}`);
      }
    }
  };
  const fresh = async () => {
    if (page) await page.context().close();
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
  };

  await fresh();
  await step('without a session /ui leads to the login page', async () => {
    await visit(page, '/ui/', { lands: '/ui/login', what: 'login' });
    check(await page.locator('form[action="/ui/login"] input#key[type="password"]').count(), 'no password field #key');
  });
  await step('a bad key is refused with 401 and an error', async () => {
    await page.fill('#key', 'WKNOTAKEY.nope');
    const response = await submit(page, page.locator('#login'), 'login-refused');
    await refused(page, response, 401, 'a bad key', { loggedIn: false });
    check(!(await page.context().cookies()).some((c) => c.name === 'wisp_session'), 'a bad key got a session cookie');
  });
  await step('the admin key logs in to a HttpOnly, SameSite=Strict session', async () => {
    await login(page, adminKey, 'admin');
    const cookie = (await page.context().cookies()).find((c) => c.name === 'wisp_session');
    check(cookie, 'no wisp_session cookie after logging in');
    check(cookie.httpOnly, 'wisp_session is not HttpOnly');
    check(cookie.sameSite === 'Strict', `wisp_session is SameSite=${cookie.sameSite}, not Strict`);
    check(cookie.path === '/ui', `wisp_session has Path=${cookie.path}, not /ui`);
    check(!(await page.evaluate(() => document.cookie)).includes('wisp_session'), 'scripts can read wisp_session');
    await visit(page, '/ui', { lands: '/ui/functions', what: 'admin-home' });
  });
  await step("the functions page lists the example app's functions", async () => {
    for (const name of ['hello', 'greet']) {
      const link = page.locator(`#functions tr[data-function="${name}"] a[href="/ui/functions/${name}"]`);
      check(await link.count(), `no row with a link for ${name}`);
    }
    await chrome(page, 'the functions page');
  });
  await step("greet's page shows its two versions, the older one with a rollback", async () => {
    await submit(page, page.locator('#functions a[href="/ui/functions/greet"]'), 'greet');
    check(new URL(page.url()).pathname === '/ui/functions/greet', `the link led to ${page.url()}`);
    const headings = (await page.locator('h1').allTextContents()).map((h) => h.trim());
    check(headings.includes('greet'), `no <h1>greet</h1>, only ${JSON.stringify(headings)}`);
    const versions = await greetVersions(page);
    const expected = JSON.stringify([{ version: '2', rollback: false }, { version: '1', rollback: true }]);
    check(JSON.stringify(versions) === expected, `versions ${JSON.stringify(versions)}, expected ${expected}`);
    check(await page.locator('form.rollback input[name="csrf"]').count(), 'the rollback form has no csrf field');
  });
  await step('invoking greet from the page shows its result and its log line', async () => {
    await page.fill('#invoke textarea[name="payload"]', '{"name":"Ada"}');
    const response = await submit(page, page.locator('#invoke-submit'), 'greet-invoked');
    check(response.status() === 200, `invoking: got ${response.status()}`);
    check(new URL(page.url()).pathname === '/ui/functions/greet', `invoking landed on ${page.url()}`);
    const result = await page.locator('#invoke-result').textContent();
    check(result.includes('Howdy, Ada!'), `the result is ${JSON.stringify(result)}, not version 2's greeting`);
    await eventually(
      page,
      '/ui/functions/greet',
      async () =>
        (await page.locator('#logs li.log-line', { hasText: 'greeted Ada' }).count()) > 0 &&
        (await page.locator('#invocations tr:has(td)').count()) > 0,
      'the log line `greeted Ada` and the invocation never both showed up',
    );
    await shot(page, 'greet-logs');
  });
  await step('a post without a csrf token is refused with 403', async () => {
    let response = await post(page, '/ui/functions/greet/rollback', { version: '1' });
    check(response.status() === 403, `no csrf: expected 403, got ${response.status()}`);
    response = await post(page, '/ui/functions/greet/rollback', { version: '1', csrf: 'forged' });
    check(response.status() === 403, `a forged csrf: expected 403, got ${response.status()}`);
    response = await post(page, '/ui/functions/greet/invoke', { payload: '{}' });
    check(response.status() === 403, `invoking without csrf: expected 403, got ${response.status()}`);
    // The browser's own form, its token taken out.
    await page.locator('form.rollback input[name="csrf"]').evaluateAll((inputs) => inputs.forEach((i) => i.remove()));
    response = await submit(page, page.locator('form.rollback button').first(), 'greet-csrf-refused');
    await refused(page, response, 403, 'a rollback form without its token');
    await visit(page, '/ui/functions/greet', { what: 'greet-still-2' });
    const versions = await greetVersions(page);
    check(versions.find((v) => v.version === '2' && !v.rollback), `refused posts changed the live version: ${JSON.stringify(versions)}`);
  });
  await step('rolling back to version 1 from the page', async () => {
    const response = await submit(page, page.locator('tr[data-version="1"] form.rollback button'), 'greet-rolled-back');
    check(response.status() === 200, `rolling back: got ${response.status()}`);
    await visit(page, '/ui/functions/greet', { what: 'greet-at-1' });
    const versions = await greetVersions(page);
    const expected = JSON.stringify([{ version: '2', rollback: true }, { version: '1', rollback: false }]);
    check(JSON.stringify(versions) === expected, `versions ${JSON.stringify(versions)}, expected ${expected}`);
    await page.fill('#invoke textarea[name="payload"]', '{"name":"Bob"}');
    await submit(page, page.locator('#invoke-submit'), 'greet-invoked-at-1');
    const result = await page.locator('#invoke-result').textContent();
    check(result.includes('Greetings, Bob!'), `after the rollback the result is ${JSON.stringify(result)}`);
  });
  if (deadLetter) {
    const [fn, id] = deadLetter.split('/');
    await step(`redriving dead letter ${id} of ${fn}`, async () => {
      const path = `/ui/functions/${fn}/dead-letters`;
      await visit(page, path, { what: `${fn}-dead-letters` });
      const row = page.locator(`tr[data-event="${id}"]`);
      check(await row.count(), `no row for dead letter ${id}`);
      check(await row.locator('form.redrive input[name="csrf"]').count(), 'the redrive form has no csrf field');
      const response = await submit(page, row.locator('form.redrive button'), `${fn}-redriven`);
      check(response.status() === 200, `redriving: got ${response.status()}`);
      await eventually(page, path, async () => (await row.count()) === 0, `dead letter ${id} is still listed after the redrive`);
      await shot(page, `${fn}-dead-letters-empty`);
    });
  }
  await step("greet's charts show this hour's invocations", async () => {
    await visit(page, '/ui/functions/greet', { what: 'greet-charts' });
    for (const id of ['chart-invocations', 'chart-errors', 'chart-latency']) {
      check(await page.locator(`#${id} svg`).count(), `no ${id} chart`);
    }
    const bars = await page.locator('#chart-invocations svg rect').count();
    check(bars >= 1, 'the invocations chart has no bar after two invocations');
    const title = await page.locator('#chart-invocations svg rect title').last().textContent();
    check(/\d+ invocations$/.test(title), `a bar's title says ${JSON.stringify(title)}`);
    check(await page.locator('#chart-latency polyline.p99').count(), 'the latency chart has no p99 line');
    await visit(page, '/ui/functions/greet?window=day', { what: 'greet-charts-day' });
    check(await page.locator('#chart-invocations svg rect').count() >= 1, "the day's chart has no bar");
  });
  await step('every page of the navigation opens, marked as the current one', async () => {
    const pages = [...new Set(await page.locator('header.top nav a').evaluateAll((links) => links.map((a) => a.getAttribute('href'))))];
    for (const path of ['/ui/functions', '/ui/events', '/ui/queues', '/ui/topics', '/ui/schedules', '/ui/buckets', '/ui/kv', '/ui/alarms', '/ui/usage', '/ui/keys']) {
      check(pages.includes(path), `the admin's navigation has no ${path} (it has ${pages.join(' ')})`);
    }
    for (const path of pages) {
      await visit(page, path, { what: `page${path.replaceAll('/', '-')}` });
      const current = await page.locator('header.top nav a[aria-current="page"]').getAttribute('href');
      check(current === path, `on ${path} the navigation marks ${current}`);
      check(await page.locator('main h1').count(), `${path} has no heading`);
    }
  });
  await step('at a phone\'s width the pages fit the screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const path of ['/ui/functions', '/ui/functions/greet', '/ui/usage']) {
      await visit(page, path, { what: `phone${path.replaceAll('/', '-')}` });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      check(overflow <= 1, `${path} is ${overflow}px wider than a phone's screen`);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
  });
  // Kept to show that one session's token is no good in another's.
  const adminCsrf = await csrfOf(page).catch(() => undefined);
  await step('logging out ends the session', async () => {
    const response = await submit(page, page.locator('#logout'), 'logged-out');
    check(new URL(page.url()).pathname === '/ui/login', `logging out landed on ${page.url()} (${response.status()})`);
    await visit(page, '/ui/', { lands: '/ui/login', what: 'after-logout' });
  });

  await fresh();
  await step('a read key sees the functions and no action buttons', async () => {
    await login(page, readKey, 'read');
    check(await page.locator('#functions tr[data-function="greet"]').count(), 'the read key sees no greet');
    await visit(page, '/ui/functions/greet', { what: 'read-greet' });
    check((await greetVersions(page)).length === 2, 'the read key does not see the versions');
    check((await page.locator('form.rollback').count()) === 0, 'the read key sees rollback forms');
    check((await page.locator('form#invoke, #invoke-submit').count()) === 0, 'the read key sees the invoke form');
  });
  await step('a read key that posts anyway is refused with 403', async () => {
    const csrf = await csrfOf(page);
    let response = await forgeForm(page, '/ui/functions/greet/rollback', { version: '2', csrf }, 'read-rollback-refused');
    await refused(page, response, 403, 'a read key rolling back');
    await visit(page, '/ui/functions/greet', { what: 'read-greet-again' });
    response = await forgeForm(page, '/ui/functions/greet/invoke', { payload: '{"name":"Eve"}', csrf }, 'read-invoke-refused');
    await refused(page, response, 403, 'a read key invoking');
    if (deadLetter) {
      const [fn, id] = deadLetter.split('/');
      response = await post(page, `/ui/functions/${fn}/dead-letters/redrive`, { id, csrf });
      check(response.status() === 403, `a read key redriving: expected 403, got ${response.status()}`);
    }
    await visit(page, '/ui/functions/greet', { what: 'read-greet-unchanged' });
    const versions = await greetVersions(page);
    check(versions.find((v) => v.version === '1'), 'version 1 is gone');
    check(
      (await page.locator('#logs li.log-line', { hasText: 'greeted Eve' }).count()) === 0,
      "the read key's refused invoke ran greet",
    );
  });
  await step("the admin session's csrf token is refused in the read key's session", async () => {
    check(adminCsrf, 'no csrf token was kept from the admin session');
    // An admin token must not lift a read session's refusal, nor count as this session's.
    const response = await post(page, '/ui/logout', { csrf: adminCsrf });
    check(response.status() === 403, `another session's token: expected 403, got ${response.status()}`);
  });

  await fresh();
  await step("a key of another namespace sees nothing of this one", async () => {
    await login(page, otherKey, 'other');
    check(
      (await page.locator('#functions tr[data-function="greet"], #functions tr[data-function="hello"]').count()) === 0,
      "the other namespace's key sees this namespace's functions",
    );
    check(await page.locator('p.empty').count(), 'an empty namespace shows no <p class="empty">');
    check((await page.locator('p.empty').first().textContent()).includes('wisp deploy'), 'the empty page does not say `wisp deploy`');
    const csrf = await csrfOf(page);
    let response = await visit(page, '/ui/functions/greet', { status: 404, what: 'other-greet' });
    await refused(page, response, 404, "another namespace's greet");
    check((await page.locator('#versions tr[data-version]').count()) === 0, 'the 404 page shows versions');
    if (deadLetter) {
      const [fn] = deadLetter.split('/');
      await visit(page, `/ui/functions/${fn}/dead-letters`, { status: 404, what: 'other-dead-letters' });
    }
    response = await post(page, '/ui/functions/greet/rollback', { version: '2', csrf });
    check(
      [403, 404].includes(response.status()),
      `another namespace's rollback of greet: expected 404 or 403, got ${response.status()}`,
    );
  });
  await step('nothing the other keys posted changed greet', async () => {
    await fresh();
    await login(page, adminKey, 'admin-again');
    await visit(page, '/ui/functions/greet', { what: 'greet-final' });
    const versions = await greetVersions(page);
    const expected = JSON.stringify([{ version: '2', rollback: true }, { version: '1', rollback: false }]);
    check(JSON.stringify(versions) === expected, `versions ${JSON.stringify(versions)}, expected ${expected}`);
  });
  return failed;
}

const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
let failed;
try {
  failed = await main(browser);
} finally {
  await browser.close();
}
console.log(failed ? `dashboard: failed; screenshots in ${shotsDir}` : `dashboard: all steps passed; screenshots in ${shotsDir}`);
process.exit(failed ? 1 : 0);
