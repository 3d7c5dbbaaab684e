"""Every page, for every role, in a real browser on demo data (issue 12, readable dashboards):
nothing on screen reads "None", "NaT", "nan" or a number in scientific notation ("3.05e+04"),
no table header is a code name ("p75", "kap_per_level_ratio"), and no page shows an uncaught
exception.

How the page is read: its visible text (text nodes whose element the browser says is visible,
charts and tables aside), after opening every expander and each tab in turn; and each visible
table's header cells. st.dataframe draws its cells in a canvas, but its grid keeps an
accessibility table of the visible columns (role="columnheader"), so the grid is scrolled
sideways to read every header. Those accessible cells carry the raw values, not the formatted
ones, so number formats and empty cells are checked under AppTest
(tests/dashboard/test_table_labels.py) on the column_config the pages pass.

Every page counts, for every role: any finding, or an uncaught exception, fails the test. A
page whose module never looks at who is signed in (SAME_FOR_EVERY_ROLE) is read once, by the
first role that may open it; opening an expander starts no run; page changes and the Dose
page's tabs (computed when opened) wait for the app to finish its run.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from audit import auth
from audit import reference_data as admin
from audit.auth import Actor, cli_actor
from audit.storage.engine import make_engine
from audit.vocab import Role
from dashboard.navigation import PAGES, VIEWS, PageSpec
from tests.e2e.conftest import DEMO_TECH, PASSWORD, Server
from tests.e2e.test_browser import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

#: One account per role (the demo's technologist; a physician linked to a demo physician).
ACCOUNTS = {Role.TECHNOLOGIST: DEMO_TECH, Role.PHYSICIAN: "dr-reader",
            Role.QUALITY_OFFICER: "qo-reader", Role.RSO: "rso-reader", Role.ADMIN: "admin"}
#: Pages whose text another change owns: findings there are reported, not failed.
BAD_TEXT = re.compile(r"\b(None|NaT|nan|NaN)\b|\d[eE][+-]\d")
#: The run the last action started has finished and drawn: the app says it is not running
#: (an attribute Streamlit sets for tests), and no element is left over from the run before.
IDLE = ("() => { const app = document.querySelector('[data-testid=stApp]');"
        " return app && app.getAttribute('data-test-script-state') !== 'running'"
        " && !document.querySelector('[data-testid=stStatusWidget]')"
        " && !document.querySelector('[data-testid=stSkeleton]')"
        " && !document.querySelector('[data-stale=true]'); }")

VISIBLE_TEXT = """(root) => {
  const skip = '[data-testid=stDataFrame], [data-testid=stVegaLiteChart], script, style';
  const out = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const element = walker.currentNode.parentElement;
    if (!element || element.closest(skip)) continue;
    if (!element.checkVisibility({opacityProperty: true, visibilityProperty: true})) continue;
    const text = walker.currentNode.textContent.trim();
    if (text) out.push(text);
  }
  return out;
}"""
GRID_HEADERS = """async (grid) => {
  const wait = ms => new Promise(done => setTimeout(done, ms));
  const headers = new Set();
  const cells = () => [...grid.querySelectorAll('[role=columnheader]')]
    .map(cell => cell.textContent.trim()).filter(text => text);
  const read = () => cells().forEach(text => headers.add(text));
  // the grid writes its accessibility table a moment after it draws, and only for the
  // columns in view: wait for it, then scroll sideways step by step (when there is anything
  // to the side), each step until the cells change (at most 400 ms)
  for (let i = 0; i < 50 && !grid.querySelector('[role=columnheader]'); i++) await wait(200);
  await wait(500);
  read();
  const scroller = grid.querySelector('.dvn-scroller');
  if (!scroller || scroller.scrollWidth <= scroller.clientWidth) return [...headers];
  for (let x = 250; x <= scroller.scrollWidth - scroller.clientWidth + 250; x += 250) {
    const before = cells().join('\\n');
    scroller.scrollLeft = x;
    scroller.dispatchEvent(new Event('scroll'));
    for (let i = 0; i < 8 && cells().join('\\n') === before; i++) await wait(50);
    await wait(50);
    read();
  }
  scroller.scrollLeft = 0;
  return [...headers];
}"""
#: Pages whose content does not depend on the role (their modules never read the actor: the
#: analysis frame and the filters are the same for everyone who may open them): read for the
#: first role in ACCOUNTS that may open them, not again for each other role.
SAME_FOR_EVERY_ROLE = {"compliance.py", "complications.py", "data_quality.py"}


@pytest.fixture(scope="module")
def readers(demo_server: Server) -> Server:
    engine = make_engine(demo_server.db_url)
    for role, name in ACCOUNTS.items():
        if role not in (Role.TECHNOLOGIST, Role.ADMIN):
            auth.add_user(engine, cli_actor(), name, role, PASSWORD)
    chen = next(p for p in admin.list_physicians(engine) if p["name"] == "Dr. Demo Chen")
    admin.update_physician(engine, cli_actor(), chen["physician_id"],
                           username=ACCOUNTS[Role.PHYSICIAN])
    engine.dispose()
    return demo_server


def idle(page: Any) -> None:
    page.wait_for_timeout(400)
    page.wait_for_function(IDLE, timeout=120_000)


def code_name(header: str) -> bool:
    """A header that is a column's code name: snake_case, or starting in lower case."""
    return "_" in header or header[:1].islower() or header.startswith("(table")


def read_view(page: Any, scope: Any = None) -> tuple[list[str], list[str]]:
    """The visible text of the app and the headers of every visible table in `scope` (the
    main area unless given)."""
    text = page.get_by_test_id("stApp").evaluate(VISIBLE_TEXT)
    headers: list[str] = []
    grids = (scope or page.get_by_test_id("stMain")).get_by_test_id("stDataFrame")
    for index in range(grids.count()):
        grid = grids.nth(index)
        if grid.is_visible():
            grid.scroll_into_view_if_needed()
            grid.hover()
            found = grid.evaluate(GRID_HEADERS)
            # a table whose headers cannot be read would pass unread: say so instead
            headers += found or [f"(table {index}: no header could be read)"]
    return text, headers


def problems_in(text: list[str], headers: list[str]) -> list[str]:
    found = [f"text {t[:90]!r}" for t in text if BAD_TEXT.search(t)]
    found += [f"table header {h!r}" for h in headers if code_name(h)]
    return sorted(set(found))


def visit(page: Any, title: str) -> list[str]:
    """Open `title` from the sidebar, every expander and each tab; what reads wrong."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    idle(page)
    page.get_by_test_id("stMain").locator("h1").first.wait_for()
    main = page.get_by_test_id("stMain")
    closed = main.locator("[data-testid=stExpander] details:not([open]) > summary")
    # opening an expander starts no run (no on_change): no waiting for the app, only for what
    # the click shows; a lazy tab (the Dose page's, on_change="rerun") is waited for below
    for _ in range(closed.count()):
        closed.first.click()
    main.locator("[data-testid=stExpander] details:not([open])").first.wait_for(
        state="detached")
    found = problems_in(*read_view(page))
    tabs = main.get_by_role("tab")
    for index in range(1, tabs.count()):
        tab = tabs.nth(index)
        tab.click()
        # the tab's own panel, once shown (reading before it is would skip its tables)
        panel = page.locator(f"[id='{tab.get_attribute('aria-controls')}']")
        panel.wait_for(state="visible")
        page.wait_for_timeout(300)
        page.wait_for_function(IDLE)
        found += problems_in(*read_view(page, panel))
    exceptions = page.get_by_test_id("stException")
    found += [f"exception: {exceptions.nth(i).inner_text()[:300]}"
              for i in range(exceptions.count())]
    return sorted(set(found))


def test_the_checks_find_code_names_and_raw_values() -> None:
    found = "\n".join(problems_in(
        ["Median: None", "3.05e+04 cm²", "window NaT", "rate nan", "Typical value 0.62"],
        ["p75", "kap_per_level_ratio", "drl", "KAP (Gy·cm²)", "5th percentile"]))
    for expected in ("None", "3.05e+04", "NaT", "nan", "'p75'", "kap_per_level_ratio",
                     "'drl'"):
        assert expected in found
    assert "Typical value" not in found and "KAP (Gy" not in found and "5th" not in found


def reads(role: Role, spec: PageSpec) -> bool:
    """Whether the test of `role` reads the page `spec`: every page the role may open, except
    a page the same for every role, read only by the first role that may open it."""
    allowed = [r for r, name in ACCOUNTS.items() if Actor(name, r).can(spec.permission)]
    if role not in allowed:
        return False
    return spec.module not in SAME_FOR_EVERY_ROLE or role is allowed[0]


def test_every_page_is_read_by_some_role() -> None:
    for spec in PAGES:
        assert any(reads(role, spec) for role in ACCOUNTS), spec.title


def test_the_pages_read_once_do_not_depend_on_the_role() -> None:
    """SAME_FOR_EVERY_ROLE holds only pages that never look at who is signed in."""
    for module in SAME_FOR_EVERY_ROLE:
        source = (VIEWS / module).read_text(encoding="utf-8")
        assert re.findall(r"\bactor\b|current_actor|\.role\b|\.can\(", source) == [], module
        assert "require(Permission.VIEW_DASHBOARDS)" in source, module


@pytest.mark.parametrize("role", list(ACCOUNTS), ids=lambda r: r.value)
def test_every_page_reads_as_words(page: Any, readers: Server, role: Role) -> None:
    sign_in(page, readers, ACCOUNTS[role])
    idle(page)
    titles = [spec.title for spec in PAGES if reads(role, spec)]
    assert titles, "no pages for this role"
    seen: dict[str, list[str]] = {}
    for title in titles:
        found = visit(page, title)
        if found:
            seen[title] = found
    report = "\n".join(f"{title}: {problem}" for title, found in seen.items()
                       for problem in found)
    assert not seen, f"{role.value} sees:\n{report}"
