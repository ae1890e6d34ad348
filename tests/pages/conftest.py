"""End-to-end tests of the pages: headless Chromium driven by Playwright against a real Daphne
serving the test database, with the fake Ollama behind it.

Playwright never downloads a browser here: it drives Debian's ``chromium`` (``apt-get install
chromium``; ``.ci/run`` installs it) through ``executable_path``. Where no Chromium exists the
tests skip and say so. The bundle must be built first (``make frontend``; ``make test`` does it).
"""

import os
import shutil
from pathlib import Path

import pytest
from django.test import Client

from tests.fakes.fixtures import ollama_fixture
from tests.live import BASE_DIR, daphne, free_port, server_env_for_test_db

CHROMIUM = (
    os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)
BUNDLE = BASE_DIR / "canvas" / "static" / "canvas" / "dist" / "app.js"
# Where the screenshots go; SCREENSHOT_DIR=docs/screenshots refreshes the README's pictures.
SCREENSHOT_DIR = Path(os.environ.get("SCREENSHOT_DIR") or BASE_DIR / ".test-screenshots")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}


def pytest_collection_modifyitems(config, items):
    if CHROMIUM:
        return
    skip = pytest.mark.skip(reason="no Chromium on this machine: apt-get install chromium")
    for item in items:
        if {"browser", "new_page"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if not CHROMIUM:
        terminalreporter.write_line(
            "pages: no Chromium on this machine (apt-get install chromium): "
            "the browser tests were skipped",
            yellow=True,
        )


page_ollama = ollama_fixture("page_ollama", scope="package")


@pytest.fixture(scope="package")
def site(django_db_setup, page_ollama):
    if not BUNDLE.exists():
        pytest.fail(f"{BUNDLE.relative_to(BASE_DIR)} is missing: build it with `make frontend`")
    env = server_env_for_test_db(
        OLLAMA_BASE_URL=page_ollama.url,
        # Nothing listens there: Groq shows as down, and no request leaves loopback.
        GROQ_BASE_URL=f"http://127.0.0.1:{free_port()}/openai/v1",
    )
    with daphne(env) as url:
        yield url


@pytest.fixture(scope="package")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread while it lives, and Django then
    # refuses ORM calls here; these tests call the ORM only between browser steps, never from
    # that loop, so allow them for as long as the browser is open.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser, site, user):
    """Opens a signed-in page (a new browser context: its own cookies) for ``user``.

    The session is made by Django's test client, not the login form, so that only the login
    test goes through the form (and no login throttle sees a burst of sign-ins).
    """
    contexts = []

    def open_page(path="/canvas/"):
        client = Client()
        client.force_login(user)
        context = browser.new_context(viewport=VIEWPORT, base_url=site)
        context.set_default_timeout(10_000)
        context.add_cookies(
            [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": site}]
        )
        contexts.append(context)
        page = context.new_page()
        page.goto(path)
        return page

    yield open_page
    for context in contexts:
        context.close()


def screenshot(page, name: str) -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path))
    return path
