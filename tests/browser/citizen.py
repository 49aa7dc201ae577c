"""The citizen's browser in the tests: a Playwright context, with or without JavaScript, and the checks
every page gets (language, title, labels, axe-core, keyboard, CSP, no third-party request)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.browser.conftest import AXE, SCREENSHOTS

AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]  # WCAG 2.1 levels A and AA
_AXE_SOURCE: str | None = None

FOCUSABLE = ("a[href], area[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), "
             "select:not([disabled]), textarea:not([disabled]), details > summary:first-of-type, "
             "audio[controls], video[controls], iframe, [contenteditable=''], [contenteditable='true'], "
             "[tabindex]:not([tabindex='-1'])")
# Marks every element a keyboard can reach (visible, not disabled, not tabindex=-1) and returns their names.
_MARK_FOCUSABLE = """(selector) => {
  const out = [];
  let i = 0;
  for (const el of document.querySelectorAll(selector)) {
    const style = getComputedStyle(el);
    if (!el.getClientRects().length || style.visibility === 'hidden' || el.closest('[hidden]')) continue;
    el.dataset.kbd = String(i++);
    out.push(((el.id ? '#' + el.id + ' ' : '') + (el.innerText || el.value || el.getAttribute('aria-label') || '')).trim());
  }
  return out;
}"""
# Puts the keyboard back at the top of the page, as after loading it (whatever a script or a click focused).
_FOCUS_TOP = """() => {
  if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
  const body = document.body;
  body.setAttribute('tabindex', '-1');
  body.focus();
  body.removeAttribute('tabindex');
}"""
_ACTIVE = "() => { const el = document.activeElement; return el && el.dataset.kbd !== undefined ? Number(el.dataset.kbd) : -1; }"
_UNLABELLED = """() => Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
  .filter(el => el.getClientRects().length && !el.closest('[hidden]'))
  .filter(el => !(el.labels && el.labels.length && el.labels[0].innerText.trim()) && !el.getAttribute('aria-label'))
  .map(el => el.id || el.name)"""


def axe_source() -> str:
    global _AXE_SOURCE
    if _AXE_SOURCE is None:
        _AXE_SOURCE = Path(AXE).read_text(encoding="utf-8")
    return _AXE_SOURCE


class Citizen:
    """One browser context; ``js=False`` is a browser with JavaScript turned off."""

    def __init__(self, chromium, site, *, js: bool = True, viewport=(1280, 800), locale: str = "fr-FR") -> None:
        self.chromium, self.site, self.js = chromium, site, js
        self.context = chromium.new_context(java_script_enabled=js, locale=locale,
                                            viewport={"width": viewport[0], "height": viewport[1]})
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.requests: list[str] = []
        self.allowed_origins = {site.broker_url, site.demo_url} | ({site.consent_demo_url} - {""})
        self.page.on("console", lambda message: self.console.append(message.text))
        self.page.on("request", lambda request: self.requests.append(request.url))
        self._axe_context = None

    def close(self) -> None:
        if self._axe_context is not None:
            self._axe_context.close()
        self.context.close()

    # -- what every page is checked for -------------------------------------------------

    def check_page(self, *, title: str, h1: str | None = None, lang: str = "fr") -> None:
        page = self.page
        page.wait_for_load_state()
        assert page.locator("html").get_attribute("lang") == lang
        assert page.title() == title, page.title()
        assert page.locator("h1").count() == 1
        if h1 is not None:
            assert page.locator("h1").inner_text().strip() == h1
        assert page.evaluate(_UNLABELLED) == [], "every field has a visible label"
        assert "Traceback" not in page.content()
        self.axe()

    def axe(self) -> None:
        """axe-core on the page as the citizen sees it; no WCAG 2.1 A/AA violation."""
        if self.js:
            violations = self._run_axe(self.page)
        else:  # axe needs JavaScript: check the very same HTML, with the site's own scripts blocked
            url, html = self.page.url, self.page.content()
            if self._axe_context is None:
                self._axe_context = self.chromium.new_context(viewport=self.page.viewport_size)
                self._axe_context.route(re.compile(r".*/static/[a-z-]+\.js$"), lambda route: route.abort())
            page = self._axe_context.new_page()
            page.route(lambda u: u == url, lambda route: route.fulfill(
                status=200, body=html, content_type="text/html; charset=utf-8"))
            page.goto(url)
            violations = self._run_axe(page)
            page.close()
        assert violations == [], f"axe-core on {self.page.url}: {violations}"

    @staticmethod
    def _run_axe(page) -> list:
        if page.evaluate("() => typeof axe") == "undefined":
            page.evaluate(axe_source())
        return page.evaluate("""async (tags) => {
          const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
          return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                              nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
        }""", AXE_TAGS)

    def assert_clean(self, *, also: tuple[str, ...] = ()) -> None:
        """No CSP violation reported, and no request to any other site than the broker and the téléservice."""
        assert not [m for m in self.console if "Content Security Policy" in m], self.console
        origins = self.allowed_origins | set(also)
        strays = [u for u in self.requests if not u.startswith("data:")
                  and not any(u == o or u.startswith(o + "/") for o in origins)]
        assert strays == [], strays

    # -- keyboard ----------------------------------------------------------------------------

    def keyboard_map(self) -> list[str]:
        """Every control a keyboard should reach on the page, in document order."""
        return self.page.evaluate(_MARK_FOCUSABLE, FOCUSABLE)

    def tab_through(self, limit: int = 80) -> list[int]:
        """Press Tab from the top of the page until the focus leaves it; the controls reached, in order."""
        reached: list[int] = []
        for _ in range(limit):
            self.page.keyboard.press("Tab")
            index = self.page.evaluate(_ACTIVE)
            if index == -1 and reached:
                break
            if index in reached:
                break
            if index != -1:
                reached.append(index)
        return reached

    def assert_keyboard_reaches_everything(self) -> list[str]:
        """From the top of the page, Tab alone reaches every visible, enabled control once, and leaves
        the page at the end (no trap, nothing skipped); returns the controls' names in document order."""
        self.page.evaluate(_FOCUS_TOP)
        controls = self.keyboard_map()
        assert controls, f"no control on {self.page.url}"
        reached = self.tab_through(limit=len(controls) + 10)
        missed = [controls[i] for i in range(len(controls)) if i not in reached]
        assert missed == [], f"on {self.page.url}, Tab never reaches {missed} (reached {[controls[i] for i in reached]})"
        assert len(reached) == len(controls), f"on {self.page.url}, the focus is stuck: {reached}"
        self.page.evaluate(_FOCUS_TOP)
        return controls

    def tab_to(self, predicate: str, limit: int = 60) -> None:
        """Press Tab until ``predicate`` (a JavaScript expression on ``el``) holds for the focused element."""
        for _ in range(limit):
            self.page.keyboard.press("Tab")
            if self.page.evaluate(f"() => {{ const el = document.activeElement; return !!(el && ({predicate})); }}"):
                return
        raise AssertionError(f"the keyboard never reached {predicate}")

    def screenshot(self, name: str, tmp_path: Path) -> Path:
        """For the README: written to docs/screenshots when missing or with NC_UPDATE_SCREENSHOTS=1."""
        target = SCREENSHOTS / name
        if os.environ.get("NC_UPDATE_SCREENSHOTS") == "1" or not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
        else:
            target = tmp_path / name
        self.page.screenshot(path=str(target), full_page=True)
        return target
