"""The web app in a real headless Chromium (Debian's /usr/bin/chromium via Playwright).

A uvicorn server runs the app in a background thread for the module. Every page a
test visits is audited (images have alt text, controls have labels, charts and
links have names, no broken images) and every console error or uncaught exception
fails the test. Screenshots go to ``$PRIMETIME_ARTIFACTS/screenshots`` (default
``test-artifacts/screenshots``).

Without Chromium the tests are skipped, or fail when ``CI`` is set: ``make test``
installs it (``apt-get install chromium``).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from web_support import ADMIN_TOKEN, PASSWORD, make_web_app

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("PRIMETIME_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(
    os.environ.get("PRIMETIME_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")
)
SHOTS = ARTIFACTS / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}

#: Runs in the page: what a Lighthouse-style accessibility pass would flag.
AUDIT_JS = """
() => {
  const problems = [];
  const named = (el) => {
    const label = (el.getAttribute("aria-label") || "").trim();
    const by = (el.getAttribute("aria-labelledby") || "").split(/\\s+/).filter(Boolean);
    const byText = by.map((id) => document.getElementById(id)?.textContent || "").join("").trim();
    const labels = Array.from(el.labels || []).map((l) => l.textContent.trim()).join("");
    const text = el.tagName === "BUTTON" || el.tagName === "A" ? el.textContent.trim() : "";
    const alt = Array.from(el.querySelectorAll ? el.querySelectorAll("img[alt]") : [])
      .map((i) => i.alt).join("").trim();
    return Boolean(label || byText || labels || text || alt || (el.title || "").trim());
  };
  if (!document.documentElement.lang) problems.push("html without lang");
  if (!document.title.trim()) problems.push("page without title");
  const h1 = document.querySelectorAll("h1").length;
  if (h1 !== 1) problems.push(`${h1} h1 elements`);
  for (const img of document.querySelectorAll("img")) {
    if (!(img.getAttribute("alt") || "").trim()) problems.push(`img without alt: ${img.src}`);
    if (img.complete && img.naturalWidth === 0) problems.push(`broken img: ${img.src}`);
  }
  for (const el of document.querySelectorAll("input, select, textarea, button")) {
    if (el.type === "hidden") continue;
    if (!named(el)) problems.push(`unlabelled control: ${el.outerHTML.slice(0, 80)}`);
  }
  for (const a of document.querySelectorAll("a[href]")) {
    if (!named(a)) problems.push(`link without a name: ${a.getAttribute("href")}`);
  }
  for (const svg of document.querySelectorAll("svg[role=img]")) {
    if (!named(svg)) problems.push(`chart without a name: ${svg.outerHTML.slice(0, 60)}`);
  }
  const ids = new Set();
  for (const el of document.querySelectorAll("[id]")) {
    if (ids.has(el.id)) problems.push(`duplicate id ${el.id}`);
    ids.add(el.id);
  }
  return problems;
}
"""


def _chromium_or_skip() -> None:
    reason = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "the playwright package is missing: pip install -e '.[dev]'"
    if reason is None and not Path(CHROMIUM).exists():
        reason = (
            f"Chromium not found at {CHROMIUM}: `make test` installs it "
            "(apt-get install chromium); tests never download a browser"
        )
    if reason is not None:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def server(web_dataset, web_registry, tmp_path_factory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Base URL of the app served by uvicorn on a free port, for this module."""
    _chromium_or_skip()
    import uvicorn

    app = make_web_app(
        tmp_path_factory.mktemp("browser-db") / "service.db", web_dataset, web_registry
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the app did not start", pytrace=False)
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(15)
    sock.close()


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@dataclass
class Tab:
    """A page in its own browser context (own cookies), with console and audit records."""

    page: Any
    base: str
    errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)

    def goto(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        self.settle()
        return response

    def settle(self) -> None:
        """Wait for the network to go quiet, then audit the page."""
        self.page.wait_for_load_state("networkidle")
        for p in self.page.evaluate(AUDIT_JS):
            self.problems.append(f"{self.page.url}: {p}")

    def shot(self, name: str, *, full_page: bool = False) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(re.search(a, e) for a in self.allowed)]

    def sign_up(
        self, name: str, *, genres: tuple[str, ...] = (), titles: tuple[str, ...] = ()
    ) -> None:
        """Sign up through the form, then onboard by clicking genre chips and title posters."""
        self.goto("/signup")
        self.page.get_by_label("Username").fill(name)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign up", exact=True).click()
        self.page.wait_for_url("**/onboarding")
        self.settle()
        for g in genres:
            self.page.locator("label.chip", has_text=re.compile(f"^{g}$")).click()
        for t in titles:
            self.page.locator("label.pick", has_text=t).first.click()
        self.page.get_by_role("button", name="Show my home page", exact=True).click()
        self.page.wait_for_url(self.base + "/")
        self.settle()

    def row_headings(self) -> list[str]:
        return [h.strip() for h in self.page.locator("section.row h2").all_inner_texts()]

    def user_id(self) -> int:
        return int(self.page.request.get(self.base + "/api/v1/me").json()["user_id"])


@pytest.fixture
def new_tab(browser: Any, server: str) -> Iterator[Any]:
    """Factory of tabs; each gets its own context. Teardown fails on console errors and
    accessibility problems seen on any page."""
    tabs: list[Tab] = []
    contexts = []

    def make(viewport: dict[str, int] = DESKTOP) -> Tab:
        ctx = browser.new_context(viewport=viewport, reduced_motion="reduce")
        contexts.append(ctx)
        page = ctx.new_page()
        tab = Tab(page, server)
        page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: tab.errors.append(f"uncaught: {e}"))
        tabs.append(tab)
        return tab

    yield make
    for ctx in contexts:
        ctx.close()
    errors = [e for t in tabs for e in t.unexpected_errors()]
    problems = [p for t in tabs for p in t.problems]
    assert not errors, f"console errors: {errors}"
    assert not problems, f"accessibility problems: {problems}"


# ------------------------------------------------------------------------ tests
def test_signup_onboarding_then_home_rows_match_the_picked_genres(new_tab) -> None:  # type: ignore[no-untyped-def]
    tab = new_tab()
    first = tab.goto("/")
    assert "/signin?next=" in tab.page.url and first.status == 200
    tab.sign_up("br-ada", genres=("Comedy",), titles=("Title 25",))
    headings = tab.row_headings()
    assert "Because you watched Title 25" in headings
    genre_rows = [h for h in headings if h.startswith("Because you like")]
    assert genre_rows and genre_rows[0] == "Because you like Comedy", headings
    assert "Because you like Drama" not in headings
    hero = tab.page.locator(".hero .meta").inner_text()
    assert "Comedy" in hero
    top = tab.page.locator("section[data-row-key=top_picks] .card-meta").all_inner_texts()
    assert top, "a top-picks row"
    tab.shot("home")


def test_liking_a_title_changes_because_you_watched_without_a_reload(new_tab) -> None:  # type: ignore[no-untyped-def]
    tab = new_tab()
    tab.sign_up("br-bob", titles=("Title 25",))
    assert "Because you watched Title 25" in tab.row_headings()
    tab.goto("/title/i3")
    live = tab.page.locator("#title-rows section.row h2").first
    assert live.inner_text() == "Because you watched Title 25"
    tab.page.evaluate("window.__sameDocument = true")
    like = tab.page.get_by_role("button", name="Like Title 3", exact=True)
    assert like.get_attribute("aria-pressed") == "false"
    like.click()
    tab.page.wait_for_function(
        "() => document.querySelector('#title-rows h2')?.textContent"
        " === 'Because you watched Title 3'"
    )
    assert tab.page.evaluate("window.__sameDocument") is True, "no full reload"
    assert (
        tab.page.get_by_role("button", name="Like Title 3", exact=True).get_attribute(
            "aria-pressed"
        )
        == "true"
    )
    assert tab.page.evaluate("document.activeElement.getAttribute('aria-label')") == "Like Title 3"
    tab.page.wait_for_function(
        "() => document.getElementById('status').textContent.includes('You liked Title 3')"
    )
    tab.page.get_by_role("button", name="Rate Title 3 5 out of 5", exact=True).click()
    tab.page.wait_for_function(
        "() => document.querySelector('.rating legend').textContent.includes('5 out of 5')"
    )
    tab.settle()
    tab.shot("title")
    tab.goto("/")
    assert "Because you watched Title 3" in tab.row_headings()


def test_play_then_complete_a_season_continue_watching(new_tab) -> None:  # type: ignore[no-untyped-def]
    tab = new_tab()
    tab.sign_up("br-cw")
    tab.goto("/title/i16")
    tab.page.get_by_role("button", name="Play Harbor Lights: Season 1", exact=True).click()
    tab.page.wait_for_function(
        "() => document.getElementById('status').textContent.includes('Playing')"
    )
    tab.goto("/")
    row = tab.page.locator("section[data-row-key=continue_watching]")
    assert row.locator(".card-title").first.inner_text() == "Harbor Lights: Season 1"
    tab.goto("/title/i16")
    tab.page.get_by_role(
        "button", name="Mark Harbor Lights: Season 1 as watched", exact=True
    ).click()
    tab.page.wait_for_function(
        "() => document.getElementById('status').textContent.includes('Marked')"
    )
    tab.goto("/")
    titles = row.locator(".card-title").all_inner_texts()
    assert "Harbor Lights: Season 2" in titles and "Harbor Lights: Season 1" not in titles


def test_search_finds_a_title_by_part_of_its_name_as_you_type(new_tab) -> None:  # type: ignore[no-untyped-def]
    tab = new_tab()
    tab.sign_up("br-find")
    tab.page.get_by_label("Search titles").fill("arbor")
    tab.page.get_by_label("Search titles").press("Enter")
    tab.page.wait_for_url("**/search?q=arbor")
    tab.settle()
    assert tab.page.locator("#results .card-title").first.inner_text().startswith("Harbor Lights")
    tab.page.evaluate("window.__sameDocument = true")
    box = tab.page.get_by_role("searchbox", name="Search titles")
    box.fill("")
    box.type("itle 3", delay=20)
    tab.page.wait_for_function(
        "() => document.querySelector('.result-count')?.textContent.includes('itle 3')"
    )
    titles = tab.page.locator("#results .card-title").all_inner_texts()
    assert (
        titles[0] == "Title 3" and "Title 35" in titles and "Harbor Lights: Season 1" not in titles
    )
    assert tab.page.evaluate("window.__sameDocument") is True
    assert tab.page.url.endswith("/search?q=itle%203")
    tab.settle()
    tab.shot("search")


def test_a_second_user_cannot_see_the_first_ones_insights(new_tab) -> None:  # type: ignore[no-untyped-def]
    ada = new_tab()
    ada.sign_up("br-ins-a", genres=("Drama",), titles=("Title 3", "Title 4"))
    ada.goto("/title/i5")
    ada.page.get_by_role("button", name="Mark Title 5 as watched", exact=True).click()
    ada.page.wait_for_function(
        "() => document.getElementById('status').textContent.includes('Marked')"
    )
    ada_id = ada.user_id()
    ada.goto("/insights")
    assert ada.page.locator("svg.chart[role=img]").count() == 4
    assert ada.page.locator(".stat", has_text="Events").locator("dd").inner_text() == "3"
    assert "Drama" in ada.page.locator("#chart-weights-d").text_content()
    ada.shot("insights", full_page=True)

    bob = new_tab()
    bob.allowed.append("status of 403")
    bob.sign_up("br-ins-b")
    refused = bob.goto(f"/users/{ada_id}/insights")
    assert refused.status == 403
    assert "only see your own insights" in bob.page.locator("[role=alert]").inner_text()
    assert bob.page.locator("svg.chart").count() == 0
    bob.goto("/insights")
    assert bob.page.locator(".stat", has_text="Events").locator("dd").inner_text() == "0"
    assert "Drama" not in bob.page.locator("main").inner_text()


def test_admin_page_refuses_a_non_admin_and_opens_with_the_token(new_tab) -> None:  # type: ignore[no-untyped-def]
    tab = new_tab()
    tab.allowed.append("status of 403")
    tab.sign_up("br-plain")
    assert tab.page.get_by_role("link", name="Admin").count() == 0
    refused = tab.goto("/admin")
    assert refused.status == 403
    assert "Admin only" in tab.page.locator("[role=alert]").inner_text()
    assert tab.page.locator("text=Model versions").count() == 0
    tab.page.get_by_label("Admin token").fill("not-it")
    tab.page.get_by_role("button", name="Open the admin pages", exact=True).click()
    tab.settle()
    assert "not the admin token" in tab.page.locator("[role=alert]").inner_text()
    tab.page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    tab.page.get_by_role("button", name="Open the admin pages", exact=True).click()
    tab.page.wait_for_url("**/admin")
    tab.settle()
    assert tab.page.get_by_role("heading", name="Model versions").is_visible()
    table = tab.page.get_by_role("table", name="Registered model versions").inner_text()
    assert "itemknn" in table and "0.3100" in table and "serving" in table
    assert tab.page.get_by_role("table", name="Promotion history").is_visible()
    assert "GET /admin" in tab.page.locator("#admin-stats").inner_text()
    tab.page.evaluate("window.__sameDocument = true")
    tab.page.get_by_role("button", name="Reload models", exact=True).click()
    tab.page.wait_for_function(
        "() => document.getElementById('status').textContent.includes('Reloaded')"
    )
    assert tab.page.evaluate("window.__sameDocument") is True
    tab.settle()
    tab.shot("admin", full_page=True)


def test_keyboard_focus_and_hover_show_the_reason(new_tab) -> None:  # type: ignore[no-untyped-def]
    tab = new_tab()
    tab.sign_up("br-keys", genres=("Drama",))
    tab.page.keyboard.press("Tab")
    assert tab.page.evaluate("document.activeElement.textContent") == "Skip to content"
    tab.page.keyboard.press("Enter")
    assert tab.page.evaluate("document.activeElement.id") == "main"
    for _ in range(30):
        tab.page.keyboard.press("Tab")
        if tab.page.evaluate("document.activeElement.classList.contains('card')"):
            break
    else:
        pytest.fail("Tab never reached a title card")
    reason = tab.page.evaluate(
        "() => { const r = document.activeElement.querySelector('.card-reason');"
        " return [getComputedStyle(r).opacity, r.textContent]; }"
    )
    assert reason[0] == "1" and reason[1], reason
    outline = tab.page.evaluate(
        "getComputedStyle(document.activeElement.querySelector('.card-poster')).outlineStyle"
    )
    assert outline == "solid", "a visible focus ring"
    other = tab.page.locator("section.row .card").nth(3)
    hidden = other.locator(".card-reason").evaluate("r => getComputedStyle(r).opacity")
    assert hidden == "0", "no reason without hover or focus"
    other.hover()
    assert other.locator(".card-reason").evaluate("r => getComputedStyle(r).opacity") == "1"
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_url("**/title/**")


def test_every_page_fits_a_phone_screen(new_tab) -> None:  # type: ignore[no-untyped-def]
    tab = new_tab(PHONE)
    tab.sign_up("br-phone", genres=("Comedy",), titles=("Title 22",))
    tab.goto("/title/i17")
    tab.page.get_by_role("button", name="Like Harbor Lights: Season 2", exact=True).click()
    tab.page.wait_for_function(
        "() => document.getElementById('status').textContent.includes('liked')"
    )
    tab.goto("/")
    tab.shot("home-375")
    tab.allowed.append("status of 403")
    for path in ("/", "/title/i17", "/search?q=title", "/insights", "/onboarding", "/admin"):
        tab.goto(path)
        width = tab.page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} scrolls sideways: {width}px"
    tab.page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    tab.page.get_by_role("button", name="Open the admin pages", exact=True).click()
    tab.page.wait_for_url("**/admin")
    tab.settle()
    assert tab.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    new_tab().goto("/signin")


def test_forms_carry_the_csrf_token_and_a_cross_origin_post_is_refused(new_tab) -> None:  # type: ignore[no-untyped-def]
    """The real forms (sign-up, onboarding, a title's actions by fetch) send the page's
    token and work; a form on another site posting here, even with the victim's token, is
    refused with the 403 page and records nothing."""
    tab = new_tab()
    tab.sign_up("br-csrf", titles=("Title 25",))
    tab.goto("/title/i3")
    form_token = tab.page.locator('form.actions input[name="csrf_token"]').get_attribute("value")
    meta_token = tab.page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert form_token and form_token == meta_token
    tab.page.get_by_role("button", name="Like Title 3", exact=True).click()
    tab.page.wait_for_function(
        "() => document.getElementById('status').textContent.includes('You liked Title 3')"
    )
    before = tab.page.request.get(tab.base + "/api/v1/me").json()["events"]

    evil = (
        "<!doctype html><html lang='en'><head><title>Evil</title></head><body><h1>Win</h1>"
        f"<form id='f' method='post' action='{tab.base}/title/i3/events'>"
        "<input type='hidden' name='action' value='dislike'>"
        f"<input type='hidden' name='csrf_token' value='{form_token}'></form></body></html>"
    )
    tab.page.route(
        "http://evil.example/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body=evil),
    )
    tab.page.goto("http://evil.example/")
    tab.allowed.append(r"status of 403 \(Forbidden\)")  # the refused post, expected
    with tab.page.expect_navigation() as nav:
        tab.page.evaluate("document.getElementById('f').submit()")
    assert nav.value.status == 403
    assert "cross-site request refused" in tab.page.content()
    after = tab.page.request.get(tab.base + "/api/v1/me").json()["events"]
    assert after == before, "the forged dislike was not recorded"
