"""Browser tests: Playwright (sync API) driving Debian's Chromium against
pytest-django's live_server. `playwright install` cannot download browsers
here, so the tests use /usr/bin/chromium and skip, saying why, without it.

The browser runs in the test thread; live_server serves from its own thread.
Playwright's sync API keeps an event loop running in the test thread for as
long as Playwright is started, which trips Django's async-safety check on
ORM calls made between browser steps; those calls are synchronous and safe,
hence DJANGO_ALLOW_ASYNC_UNSAFE. The browser is started per module, so the
loop is gone again before a worker moves on to other tests."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from tests.browser.kit import PASSWORD, VIEWPORTS, confirm_template, email_template
from tests.helpers import marketer_group

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Screenshots of every browser test (CI keeps the folder; see README).
SCREENSHOTS = ARTIFACTS / "screenshots"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -r requirements-dev.txt)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1600, "height": 1200}, base_url=live_server.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def on_console(message) -> None:
        # The admin has no favicon; every other console error is a problem.
        if message.type == "error" and "favicon" not in (message.location or {}).get("url", ""):
            problems.append(f"console {message.type}: {message.text}")

    page.on("console", on_console)
    page.problems = problems
    yield page
    context.close()


@pytest.fixture(params=list(VIEWPORTS))
def sized(request, page):
    """The page at each of the two window sizes of issue #14 (a test per size)."""
    width, height = VIEWPORTS[request.param]
    page.set_viewport_size({"width": width, "height": height})
    return page


@pytest.fixture
def templates(transactional_db):
    """The two templates the SPEC §11 example sends (plain text)."""
    for slug in ("confirm", "reminder"):
        email_template(slug)


@pytest.fixture
def previewable_templates(transactional_db):
    """The same two, "confirm" with an HTML part to preview."""
    confirm_template()
    email_template("reminder")


@pytest.fixture
def shoot(request):
    """shoot(page, "stage") keeps a full-page screenshot in
    test-artifacts/screenshots/; full_page=False keeps what the window shows;
    shoot(page, "stage", element=locator) one of that element only."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_]+", "_", request.node.name).strip("_")

    def take(page, stage: str, *, element=None, full_page: bool = True) -> Path:
        path = SCREENSHOTS / f"{name}--{stage}.png"
        if element is not None:
            element.screenshot(path=str(path))
        else:
            page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


@pytest.fixture
def superuser(transactional_db, django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", password=PASSWORD)


@pytest.fixture
def marketer(transactional_db, django_user_model):
    """A staff user in the Marketer group. The group comes from a data
    migration; a transactional test flushes the tables, so it is made again
    by the migration's own function (tests.helpers.marketer_group)."""
    user = django_user_model.objects.create_user("mia", "mia@example.com", password=PASSWORD, is_staff=True)
    user.groups.add(marketer_group())
    return user


class Timer:
    """Stage timings, printed with -s and kept beside the screenshots."""

    def __init__(self, name: str):
        self.name = name
        self.start = self.last = time.monotonic()
        self.stages: list[tuple[str, float]] = []

    def lap(self, stage: str) -> None:
        now = time.monotonic()
        self.stages.append((stage, now - self.last))
        self.last = now

    def write(self) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        lines = [f"{stage}: {seconds:.2f}s" for stage, seconds in self.stages]
        lines.append(f"total: {time.monotonic() - self.start:.2f}s")
        (ARTIFACTS / f"{self.name}--timings.txt").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))


@pytest.fixture
def timer(request):
    timing = Timer(re.sub(r"[^A-Za-z0-9_]+", "_", request.node.name))
    yield timing
    timing.write()
