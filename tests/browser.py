"""Fixtures for tests in a real headless Chromium (Debian's, driven by Playwright)."""
import os
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("KAMEN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def live_server(app):
    """The test app served over real HTTP on a free localhost port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def chromium():
    if not Path(CHROMIUM).exists():
        from tests.conftest import _unavailable

        _unavailable("Chromium", f"{CHROMIUM} not found")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def _browser_page(chromium, request, timeout=10_000, **context_args):
    """A page in a fresh context; its final screenshot goes to test-artifacts/."""
    context = chromium.new_context(locale="zh-CN", **context_args)
    page = context.new_page()
    page.set_default_timeout(timeout)
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


@pytest.fixture
def page(chromium, request):
    yield from _browser_page(chromium, request, viewport={"width": 1280, "height": 900})


@pytest.fixture
def phone(chromium, request):
    """A page on a 390 px wide phone screen."""
    yield from _browser_page(chromium, request, timeout=15_000, **PHONE)


def admin_login(page, base):
    """Log in through the real form as the admin that ``auth.create()`` made."""
    from playwright.sync_api import expect

    from tests.helpers import ADMIN_PASSWORD, ADMIN_USER

    page.goto(f"{base}/admin/login")
    page.get_by_label("用户名").fill(ADMIN_USER)
    page.get_by_label("密码", exact=True).fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("heading", name="概览")).to_be_visible()
