// What a real browser sees on `cutover serve`: headless Chromium (Debian's `chromium` package)
// driven by playwright-core. tests/all/browser.rs runs it and asserts on what it prints, one JSON
// object: the pages it reached and the cookies it holds.
//
//   node tests/browser/browse.mjs <base-url> links|unknown-override|preview [<link>]
//
// `links` opens the home page and follows links (absolute and relative) by clicking them, then
// types `/about` without its slash; `unknown-override` opens `/?override_build_number=77`;
// `preview <link>` opens a preview link (as `preview-url` prints it), clicks from page to page and
// types `/about`, to see whether the version it names stays pinned; `preview-clear <link>` opens
// it, clicks once, then opens the `clear` link and types `/about`.
import { chromium } from 'playwright-core';

const [base, scenario, link] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'], timeout: 60_000 });
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const visits = [];
  // Where the browser ended up, which page that is (its <h1>) and the version that served it.
  const seen = async (step, response) => {
    const heading = await page.locator('h1').first().textContent({ timeout: 2_000 }).catch(() => null);
    visits.push({
      step,
      path: new URL(page.url()).pathname,
      status: response ? response.status() : null,
      version: response ? (await response.allHeaders())['x-cutover-version'] ?? null : null,
      page: heading,
    });
  };
  // A click that fails (no such link on the page) is recorded as a visit to nowhere.
  const click = async (step, selector) => {
    if ((await page.locator(selector).count()) === 0) {
      visits.push({ step, path: null, status: null, version: null, page: null, error: `no ${selector} here` });
      return;
    }
    try {
      const [response] = await Promise.all([page.waitForNavigation(), page.click(selector)]);
      await seen(step, response);
    } catch (e) {
      visits.push({ step, path: null, status: null, version: null, page: null, error: String(e).split('\n')[0] });
    }
  };
  if (scenario === 'links') {
    await seen('open /', await page.goto(`${base}/`));
    await click('click about', 'a#about');
    await click('click post-1', 'a#post');
    await click('click the relative link to about', 'a#about-relative');
    await click('click home', 'a#home');
    await seen('type /about', await page.goto(`${base}/about`));
    await click('click post-1 from /about', 'a#post');
  } else if (scenario === 'unknown-override') {
    await seen('open /?override_build_number=77', await page.goto(`${base}/?override_build_number=77`));
    await seen('open / again', await page.goto(`${base}/`));
  } else if (scenario === 'preview') {
    await seen('open the link', await page.goto(link));
    await click('click about', 'a#about');
    await click('click post-1', 'a#post');
    await click('click home', 'a#home');
    await seen('type /about', await page.goto(`${base}/about`));
  } else if (scenario === 'preview-clear') {
    await seen('open the link', await page.goto(link));
    await click('click about', 'a#about');
    await seen('open the clear link', await page.goto(`${base}/?override_build_number=clear`));
    await seen('type /about', await page.goto(`${base}/about`));
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  const cookies = (await context.cookies()).map(({ name, value }) => ({ name, value }));
  process.stdout.write(`${JSON.stringify({ visits, cookies })}\n`);
} finally {
  await browser.close();
}
