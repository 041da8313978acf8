#!/usr/bin/env python3
"""Drives the console in headless Chromium (Debian's `chromium`, through Playwright for Python).

usage: console.py BASE_URL COMMITTEE_KEY COMMITTEE_NAME OUTPUT_DIR

Signs in with a wrong key (refused, visibly) and with the committee's (its name and kind shown),
switches to Chinese and back, signs out, on a desktop and on a phone-sized screen; saves a
screenshot of each view in OUTPUT_DIR. Fails on any script error, on any request to another
origin, and if the key is kept anywhere but the tab's sessionStorage. Prints one line per check."""
import os
import sys

from playwright.sync_api import expect, sync_playwright

base, key, name, output = sys.argv[1:5]
chromium = os.environ.get("TECHBANK_CHROMIUM", "/usr/bin/chromium")
expect.set_options(timeout=15_000)

with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    for label, viewport in [("desktop", {"width": 1280, "height": 800}), ("phone", {"width": 375, "height": 740})]:
        context = browser.new_context(locale="en-US", viewport=viewport)
        page = context.new_page()
        requests, errors = [], []
        page.on("request", lambda request: requests.append(request.url))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: errors.append(message.text)
                if message.type == "error" and "Failed to load resource" not in message.text else None)

        page.goto(base + "/console")
        page.get_by_label("API key").fill("tbk_" + "0" * 40)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_have_text("This key was refused.")
        print(f"{label}: a wrong key is refused")

        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#organization-name")).to_have_text(name)
        expect(page.locator("#organization-kind")).to_have_text("committee")
        page.screenshot(path=f"{output}/signed-in-{label}.png", full_page=True)
        print(f"{label}: signed in as {name} (committee)")

        stored = page.evaluate("() => [Object.keys(localStorage).length, document.cookie, sessionStorage.getItem('apiKey')]")
        assert stored[0] == 0 and stored[1] == "" and stored[2] == key, f"the key must live in sessionStorage only: {stored}"
        print(f"{label}: the key is in sessionStorage only")

        page.get_by_role("button", name="中文").click()
        expect(page.locator("#organization-kind")).to_have_text("管理委员会")
        expect(page.get_by_role("button", name="退出")).to_be_visible()
        assert page.evaluate("() => document.documentElement.lang") == "zh-Hans"
        page.screenshot(path=f"{output}/signed-in-zh-{label}.png", full_page=True)
        page.get_by_role("button", name="English").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        print(f"{label}: the language switch works both ways")

        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_label("API key")).to_be_visible()
        assert page.evaluate("() => sessionStorage.getItem('apiKey')") is None
        page.screenshot(path=f"{output}/signed-out-{label}.png", full_page=True)
        print(f"{label}: signed out, the key forgotten")

        foreign = [url for url in requests if not url.startswith(base + "/")]
        assert not foreign, f"requests to another origin: {foreign}"
        assert not errors, f"script errors: {errors}"
        print(f"{label}: {len(requests)} requests, all to {base}; no script error")
        context.close()
    browser.close()
