"""Neurologists reading at the same time, in real Chromium: one browser context (own cookies, own
session) per reader, all driven at once with Playwright's async API. Used by the server tests and
by bench/capacity.py."""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from tests.browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD

KEYS = {"a": "L3", "s": "L2", "d": "L1", "n": "N", "j": "R1", "k": "R2", "l": "R3"}
ERROR_TEXTS = ("Something went wrong", "Traceback", "cannot start a transaction", "OperationalError")


@dataclass
class ReaderRun:
    """What one reader did and saw: the presses the page acknowledged (the next image came), the
    keypress-to-next-image times, and any error the page showed."""

    name: str
    acknowledged: list[str] = field(default_factory=list)  # the labels, in the order the page took them
    presses: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def sign_in(page, url: str, name: str, path: str = "/read") -> None:
    await page.goto(url + path)
    await page.get_by_label("User name").fill(name)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_text(f"Signed in as {name}").wait_for()


async def _next_token(page, previous: str | None, timeout_ms: float) -> str | None:
    """Wait for a new image (its token) or for the end of the queue (None)."""
    done = page.get_by_text("Nothing left for you to read right now")
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        token = await page.evaluate("window.__fnpPainted ? window.__fnpPainted.token : null")
        if token is not None and token != previous:
            return token
        if await done.count():
            return None
        await asyncio.sleep(0.02)
    raise TimeoutError(f"no new image after {previous}")


async def read_until_done(browser, url: str, name: str, seed: int, look_ms: int = 550, double_share: float = 0.25,
                          max_reads: int | None = None, timeout_ms: float = 60_000) -> ReaderRun:
    """Sign `name` in and read by keyboard until the queue is empty: look at each image for
    `look_ms`, press a label key, and in `double_share` of the presses press it again 60 ms later
    (the double press a tired hand makes). Returns what happened."""
    rng = random.Random(seed)
    run = ReaderRun(name)
    context = await browser.new_context(viewport={"width": 1366, "height": 768})
    page = await context.new_page()
    page.set_default_timeout(timeout_ms)
    try:
        await sign_in(page, url, name)
        token = await _next_token(page, None, timeout_ms)
        while token is not None and (max_reads is None or len(run.acknowledged) < max_reads):
            await page.wait_for_timeout(look_ms)
            key = rng.choice(list(KEYS))
            t0 = await page.evaluate("performance.now()")
            await page.keyboard.press(key)
            run.presses += 1
            if rng.random() < double_share:
                await page.wait_for_timeout(60)
                await page.keyboard.press(key)
                run.presses += 1
            try:
                nxt = await _next_token(page, token, timeout_ms)
            except TimeoutError:
                run.errors.append(f"no next image {timeout_ms / 1000:.0f} s after the key press on {token}")
                break
            if nxt is not None:
                painted = await page.evaluate("window.__fnpPainted.at")
                run.latencies_ms.append(painted - t0)
            run.acknowledged.append(KEYS[key])
            token = nxt
        body = await page.inner_text("body")
        run.errors += [t for t in ERROR_TEXTS if t in body]
    finally:
        await context.close()
    return run


async def readers_at_once(url: str | list[str], names: list[str], **kw) -> list[ReaderRun]:
    """Run `names` reading at the same time in one Chromium (a context each); `url` may be a list
    of servers, readers taking them in turn."""
    from playwright.async_api import async_playwright

    urls = [url] if isinstance(url, str) else url
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            return await asyncio.gather(*[read_until_done(browser, urls[i % len(urls)], n, seed=i, **kw)
                                          for i, n in enumerate(names)])
        finally:
            await browser.close()
