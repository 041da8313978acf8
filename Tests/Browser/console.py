#!/usr/bin/env python3
"""Drives the console in headless Chromium (Debian's `chromium`, through Playwright for Python).

usage: console.py SETUP_JSON

SETUP_JSON names `base` (the server's URL), `output` (where screenshots go), `xss_title` (a
technology's title that holds an HTML tag) and the `key` and `name` of a `committee`, an
`institute` and a `sub_park`. The database holds the demo data set, with one deal waiting for the
committee. Prints one line per check and fails on the first that does not hold, on any script
error, and on any request to another origin."""
import functools
import hashlib
import json
import os
import random
import sys
import urllib.request

from playwright.sync_api import expect, sync_playwright

setup = json.loads(sys.argv[1])
base, output = setup["base"], setup["output"]
chromium = os.environ.get("TECHBANK_CHROMIUM", "/usr/bin/chromium")
expect.set_options(timeout=15_000)
DESKTOP, PHONE = {"width": 1280, "height": 800}, {"width": 375, "height": 740}


class Browser:
    """One browser context (a tab with its own storage) that records requests and script errors."""

    def __init__(self, browser, label, viewport):
        self.label = label
        self.context = browser.new_context(locale="en-US", viewport=viewport, accept_downloads=True)
        self.page = self.context.new_page()
        self.requests, self.errors = [], []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda message: self.errors.append(message.text)
                     if message.type == "error" and "Failed to load resource" not in message.text else None)
        self.page.on("dialog", lambda dialog: self.errors.append(f"a script opened a dialog: {dialog.message}"))

    def check(self, text):
        print(f"{self.label}: {text}", flush=True)

    def shot(self, name):
        self.page.screenshot(path=f"{output}/{name}-{self.label}.png", full_page=True)

    def sign_in(self, who):
        page = self.page
        page.goto(base + "/console")
        page.get_by_label("API key").fill(setup[who]["key"])
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#organization-name")).to_have_text(setup[who]["name"])

    def view(self, name):
        self.page.get_by_role("navigation").get_by_role("link", name=name, exact=True).click()
        expect(self.page.locator("#view-heading")).to_have_text(name)
        expect(self.page.locator("#view > p[role=status]")).to_have_count(0)  # loaded

    def close(self):
        foreign = [url for url in self.requests if not (url.startswith(base + "/") or url.startswith("blob:" + base + "/"))]
        assert not foreign, f"requests to another origin: {foreign}"
        assert not self.errors, f"script errors: {self.errors}"
        self.check(f"{len(self.requests)} requests, all to {base}; no script error")
        self.context.close()


def committee_on_desktop(browser):
    tab = Browser(browser, "desktop", DESKTOP)
    page = tab.page
    page.goto(base + "/console")
    page.get_by_label("API key").fill("tbk_" + "0" * 40)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("This key was refused.")
    tab.check("a wrong key is refused")
    tab.sign_in("committee")
    expect(page.locator("#organization-kind")).to_have_text("committee")
    key = setup["committee"]["key"]
    stored = page.evaluate("() => [JSON.stringify(localStorage), document.cookie, sessionStorage.getItem('apiKey')]")
    assert key not in stored[0] and stored[1] == "" and stored[2] == key, f"the key must live in sessionStorage only: {stored}"
    tab.check("signed in as the committee; the key is in sessionStorage only")

    expect(page.get_by_role("table", name="Technologies by state")).to_be_visible()
    expect(page.locator("#events tbody tr").first).to_be_visible()
    tab.shot("overview")
    tab.check("overview: counts, and the latest events from the stream")

    tab.view("Audit")
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#verification")).to_contain_text("Verified")
    expect(page.locator("#verification")).to_contain_text("checkpoint saved")
    saved = json.loads(page.evaluate("() => localStorage.getItem('techbank.auditCheckpoint')"))
    tab.check(f"audit: the first visit verifies the signature and saves the checkpoint of {saved['size']} events")

    tab.view("Approvals")
    card = page.get_by_role("article")
    expect(card).to_have_count(1)
    for label in ["Parties", "Kind", "Territories", "Total", "Approval rule"]:
        expect(card.get_by_text(label, exact=True)).to_be_visible()
    card.get_by_role("button", name="Reject").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")  # nothing decided, and the dialog leaves the page
    expect(page.locator("dialog")).to_have_count(0)
    card.get_by_role("button", name="Approve").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Reason")).to_be_focused()
    dialog.get_by_role("button", name="Confirm").click()
    expect(dialog).to_be_visible()  # no reason, no decision
    dialog.get_by_label("Reason").fill("Cross-border terms reviewed by the committee.")
    tab.shot("approvals")
    dialog.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Decision recorded.")).to_be_visible()
    expect(page.get_by_text("No deal is waiting for the committee.")).to_be_visible()
    tab.check("approvals: a deal approved with a reason and a confirmation")

    tab.view("Audit")
    forged = {"count": 0}

    def forge(route):
        answer = route.fetch()
        proof = answer.json()
        proof["proof"][0] = ("0" if proof["proof"][0][0] != "0" else "1") + proof["proof"][0][1:]
        forged["count"] += 1
        route.fulfill(response=answer, json=proof)

    page.route("**/v1/audit/proofs/consistency*", forge)
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#verification [role=alert]")).to_contain_text("Verification failed: the consistency proof does not prove")
    assert forged["count"] == 1, "the proof was not intercepted"
    tab.shot("audit-forged")
    page.unroute("**/v1/audit/proofs/consistency*")
    tab.check("audit: a forged consistency proof fails visibly")

    def tamper_size(route):
        answer = route.fetch()
        checkpoint = answer.json()
        lines = checkpoint["note"].split("\n")
        lines[1] = str(int(lines[1]) + 1)
        route.fulfill(response=answer, json=dict(checkpoint, note="\n".join(lines)))

    page.route("**/v1/audit/checkpoint", tamper_size)
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#verification [role=alert]")).to_contain_text("signature is not valid")
    page.unroute("**/v1/audit/checkpoint")
    tab.check("audit: a checkpoint whose size was changed fails its signature")

    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#verification")).to_contain_text("Verified")
    expect(page.locator("#verification")).to_contain_text(f"grew from {saved['size']} to")
    tab.shot("audit")
    tab.check("audit: after new events, the consistency proof from the saved checkpoint verifies")

    tab.view("Deals")
    page.get_by_label("Status").select_option("approved")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#view tbody tr")).to_have_count(2)  # the demo's approved deal, and the one approved above
    page.locator("#view tbody tr a").first.click()
    for caption in ["Milestones", "Versions"]:
        expect(page.get_by_role("table", name=caption)).to_be_visible()
    expect(page.get_by_text("Signatures")).to_be_visible()
    tab.shot("deal")
    tab.check("deals: filtered by status; a deal's page with its milestones, versions and signatures")

    tab.view("Technologies")
    page.get_by_role("searchbox", name="Search").fill("onerror")
    page.get_by_role("search").get_by_role("button", name="Search").click()
    result = page.locator("#results tbody tr")
    expect(result).to_have_count(1)
    expect(result.first).to_contain_text(setup["xss_title"])
    assert page.locator("#view img").count() == 0, "the title's tag became an element"
    tab.shot("technologies")
    result.first.get_by_role("link").click()
    expect(page.locator("#view h3")).to_have_text(setup["xss_title"])
    expect(page.get_by_role("table", name="IP rights")).to_be_visible()
    expect(page.get_by_role("table", name="History")).to_be_visible()
    assert page.locator("#view img").count() == 0
    tab.check("technologies: a title with an HTML tag is found and shown as text, in the list and on its page; no script ran")

    tab.view("Reports")
    expect(page.locator(".chart svg .bar rect").first).to_be_visible()
    bars = page.locator(".chart svg .bar").count()
    expect(page.get_by_role("table", name="Table").locator("tbody tr")).to_have_count(bars)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    with open(download.value.path(), encoding="utf-8") as csv:
        lines = csv.read().splitlines()
    assert len(lines) == bars + 1 and "sub_park" in lines[0], f"the CSV has a header and the chart's groups: {lines[:3]}"
    page.get_by_role("table", name="Table").get_by_role("button", name="Details").first.click()
    expect(page.locator("#drill tbody tr").first).to_be_visible()
    tab.shot("reports")
    tab.check(f"reports: a chart of {bars} groups, the same groups in the table and in the CSV, and a drill-down to the deals")

    page.get_by_role("button", name="中文").click()
    expect(page.locator("#view-heading")).to_have_text("报表")
    expect(page.get_by_role("link", name="下载 CSV")).to_be_visible()
    assert page.evaluate("() => document.documentElement.lang") == "zh-Hans"
    tab.shot("reports-zh")
    page.get_by_role("button", name="English").click()
    expect(page.locator("#view-heading")).to_have_text("Reports")
    tab.check("the language switch works both ways")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("() => sessionStorage.getItem('apiKey')") is None
    tab.check("signed out, the key forgotten")

    # The next organization in this tab fetches every title itself: nothing the committee's
    # session fetched is shown from memory.
    signed_in_at = len(tab.requests)
    page.get_by_label("API key").fill(setup["institute"]["key"])  # in the same page: no reload forgets for us
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#organization-name")).to_have_text(setup["institute"]["name"])
    tab.view("Deals")
    expect(page.locator("#view tbody tr").first).to_be_visible()
    fetched = [url for url in tab.requests[signed_in_at:] if "/v1/technologies/" in url]
    assert len(fetched) >= page.locator("#view tbody tr").count(), f"titles served from the last session's memory: {fetched}"
    tab.check("after signing out, the next organization's titles are fetched with its own key")
    tab.close()


def institute(browser):
    tab = Browser(browser, "institute", DESKTOP)
    page = tab.page
    tab.sign_in("institute")
    links = page.get_by_role("navigation").get_by_role("link").all_inner_texts()
    assert links == ["Overview", "Deals", "Technologies", "Audit"], f"an institute's views: {links}"
    page.goto(base + "/console#approvals")
    expect(page.locator("#view [role=alert]")).to_have_text("This view is not available to your organization.")
    for name in ["constructor", "__proto__", "toString", "nothing/at/all?x=1"]:
        page.goto(base + "/console#" + name)
        expect(page.locator("#view-heading")).to_have_text("Overview")
    tab.view("Deals")
    expect(page.locator("#view tbody tr").first).to_be_visible()
    assert page.get_by_role("button", name="Approve").count() == 0
    tab.shot("deals")
    tab.check(f"an institute sees {links}, no approval action anywhere; unknown views show the overview")
    tab.close()


def sub_park(browser):
    tab = Browser(browser, "sub-park", DESKTOP)
    page = tab.page
    tab.sign_in("sub_park")
    tab.view("Activity")
    expect(page.get_by_text("Members", exact=True)).to_be_visible()
    expect(page.get_by_role("table", name="By field").first).to_be_visible()
    tab.shot("activity")
    tab.check("a sub-park sees its members' activity")
    tab.close()


def phone(browser):
    tab = Browser(browser, "phone", PHONE)
    page = tab.page
    tab.sign_in("committee")
    for name in ["Overview", "Deals", "Reports"]:
        tab.view(name)
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} is {overflow} px wider than the phone's screen"
    tab.shot("reports")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("() => document.activeElement !== document.body"), "the keyboard reaches the page"
    tab.check("on a phone-sized screen, no view is wider than the screen")
    tab.close()


def get(path, who="committee"):
    request = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + setup[who]["key"], "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def consistency_property(browser):
    """The console's RFC 9162 verifier (audit.js, run in the page) against the server's proofs for
    random pairs of tree sizes, with roots computed here from the events' leaf hashes: every true
    proof verifies; every proof with one hash changed, and every true proof offered for the wrong
    roots, fails."""
    tab = Browser(browser, "verifier", DESKTOP)
    leaves, cursor = [], None
    while True:
        page = get("/v1/audit/events?limit=200" + (f"&cursor={cursor}" if cursor else ""))
        leaves += [bytes.fromhex(event["leaf_hash"]) for event in page["data"]]
        if not (cursor := page["next_cursor"]):
            break

    @functools.cache
    def root(start, end):  # RFC 9162 §2.1.1: MTH of leaves[start:end]
        if end - start == 1:
            return leaves[start]
        split = 1 << ((end - start - 1).bit_length() - 1)
        return hashlib.sha256(b"\x01" + root(start, start + split) + root(start + split, end)).digest()

    seed = int(os.environ.get("CONSOLE_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    size = len(leaves)
    pairs = [(1, 2), (2, 3), (3, 4), (4, 8), (5, 8), (7, 8), (8, 9), (6, 6), (1, size), (size - 1, size)]
    pairs += [tuple(sorted((rng.randint(1, size), rng.randint(1, size)))) for _ in range(50)]
    cases = [dict(first=first, second=second, firstRoot=root(0, first).hex(), secondRoot=root(0, second).hex(),
                  proof=get(f"/v1/audit/proofs/consistency?from={first}&to={second}")["proof"], tamper=rng.randrange(1 << 30))
             for first, second in pairs]
    tab.page.goto(base + "/console")
    failures = tab.page.evaluate("""async (cases) => {
        const { verifyConsistency } = await import("/console/audit.js");
        const bytes = (hex) => Uint8Array.from(hex.match(/../g), (pair) => parseInt(pair, 16));
        const fails = async (...args) => { try { await verifyConsistency(...args); return false; } catch { return true; } };
        const failures = [];
        for (const c of cases) {
            const name = `${c.first}→${c.second}`;
            if (await fails(c.first, c.second, bytes(c.firstRoot), bytes(c.secondRoot), c.proof)) failures.push(name + ": a true proof failed");
            if (c.proof.length) {
                const forged = [...c.proof];
                const at = c.tamper % forged.length;
                forged[at] = (forged[at][0] === "0" ? "1" : "0") + forged[at].slice(1);
                if (!(await fails(c.first, c.second, bytes(c.firstRoot), bytes(c.secondRoot), forged))) failures.push(name + ": a forged proof verified");
            }
            if (c.firstRoot !== c.secondRoot && !(await fails(c.first, c.second, bytes(c.secondRoot), bytes(c.firstRoot), c.proof))) {
                failures.push(name + ": a proof verified for the wrong roots");
            }
        }
        return failures;
    }""", cases)
    assert not failures, f"seed {seed} (rerun with CONSOLE_SEED={seed}): {failures}"
    tab.check(f"the browser's consistency verifier agrees on {len(cases)} pairs of tree sizes up to {size} (seed {seed}), "
              "and refuses every forged proof and wrong root")
    tab.close()


with sync_playwright() as playwright:
    browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    for scenario in [committee_on_desktop, consistency_property, institute, sub_park, phone]:
        scenario(browser)
    browser.close()
