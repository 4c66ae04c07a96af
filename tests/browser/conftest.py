"""Headless Chromium (Debian ``chromium``) driven by Playwright; no browser download."""

import shutil
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import async_playwright

from tests.audit.conftest import app_client, signer  # noqa: F401  (fixtures)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser():
    """One Chromium for the session (a launch was ~1.3 s of each test's setup); every test opens its own
    context (``new_context``/``new_page``), so no cookie, session or page carries over between tests."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make system-deps)")

    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()
