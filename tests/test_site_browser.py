"""The published site, offline, in a real browser (``slow``): headless Chromium via selenium.

A clone of this repository (its committed results: several machines, several commits) is
published by tools.ci.publish and served on localhost. Chromium runs with every host name
but localhost unresolvable, so a page that needs the network fails here as it would on a lab
machine without one. The front page must open on the leaderboard; a workload's link there
must open asv's graph of that machine and workload with points drawn in the canvas; asv's
grid must list the benchmarks and draw a graph; no page may log an error, show asv's error
banner, or ask for anything beyond localhost. Screenshots go to .artifacts/.

Skips, saying what is missing, without selenium, Chromium or chromedriver (Debian:
``apt-get install chromium chromium-driver``; .ci/run installs them).

The checks without a browser (what publishing rewrites, the shipped copies' bytes) run always.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from attnbench import offline_site

from .conftest import ROOT

ARTIFACTS = ROOT / ".artifacts"
BENCHMARK = "forward.ForwardMetrics.track_tflops"  # in every machine's committed results
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ASV_INDEX = Path(__import__("asv").__file__).parent / "www" / "index.html"


# -- without a browser -----------------------------------------------------------------------
def _asv_tags() -> list[str]:
    return re.findall(r"<(?:script|link)\b[^>]*>", ASV_INDEX.read_text())


def test_every_cdn_file_of_asvs_page_has_a_shipped_copy(tmp_path):
    remote = offline_site.external_assets(ASV_INDEX.read_text())
    assert remote and set(remote) == set(offline_site.ASSETS)
    html = tmp_path / "html"
    html.mkdir()
    shutil.copy(ASV_INDEX, html / "index.html")
    assert offline_site.make_offline(html) == [html / "index.html"]
    page = (html / "index.html").read_text()
    assert offline_site.external_assets(page) == []
    assert "integrity=" not in page and "crossorigin=" not in page
    for local in offline_site.ASSETS.values():
        assert f'"vendor/{local}"' in page and (html / "vendor" / local).is_file()
    assert offline_site.make_offline(html) == []  # idempotent
    assert 'href="https://github.com/airspeed-velocity/asv/"' in page  # a link, not an asset


def test_shipped_copies_are_the_files_asv_names_where_the_cdn_serves_npms_bytes():
    """The integrity hash asv's page gives matches the copy for each file the CDN serves
    unchanged from npm (flot and stupidtable are cdnjs's own builds: not comparable)."""
    assets = Path(offline_site.__file__).parent / "site_assets"
    checked = 0
    for tag in _asv_tags():
        url = re.search(r'(?:src|href)="(https://[^"]+)"', tag)
        sri = re.search(r'integrity="(sha\d+)-([^"]+)"', tag)
        if not url or not sri or ("cdnjs" in url.group(1) and "md5" not in url.group(1)):
            continue
        data = (assets / offline_site.ASSETS[url.group(1)]).read_bytes()
        digest = base64.b64encode(hashlib.new(sri.group(1), data).digest()).decode()
        assert digest == sri.group(2), url.group(1)
        checked += 1
    assert checked == 5  # jquery, orderBars, md5, bootstrap js and css


def test_a_page_with_an_unknown_cdn_file_is_refused(tmp_path):
    (tmp_path / "index.html").write_text('<script src="https://cdn.example/x.js"></script>')
    with pytest.raises(offline_site.OfflineSiteError, match=r"cdn\.example/x\.js"):
        offline_site.make_offline(tmp_path)


# -- in Chromium -----------------------------------------------------------------------------
def _find_browser() -> tuple[str, str]:
    """(browser, chromedriver) of one version, or a skip naming what is missing. GitHub's
    Ubuntu images: Google Chrome with the driver in $CHROMEWEBDRIVER; Debian: chromium with
    chromium-driver."""
    pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")
    pairs = []
    if os.environ.get("CHROMEWEBDRIVER"):
        image_driver = Path(os.environ["CHROMEWEBDRIVER"]) / "chromedriver"
        pairs += [(shutil.which(b), str(image_driver)) for b in BROWSERS[2:]]
    pairs += [(shutil.which(b), shutil.which("chromedriver")) for b in BROWSERS]
    for browser, driver in pairs:
        if browser and driver and Path(driver).exists():
            return browser, driver
    pytest.skip(
        "needs Chromium and chromedriver (Debian: apt-get install chromium chromium-driver); "
        f"found browsers {[b for b in BROWSERS if shutil.which(b)]}, "
        f"chromedriver {shutil.which('chromedriver')}"
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """html/ of a clone of this repository, published, served on localhost."""
    _find_browser()
    if not (ROOT / ".git").exists():
        pytest.skip("needs the git repository (its history and committed results)")
    tmp = tmp_path_factory.mktemp("site")
    repo, home = tmp / "repo", tmp / "home"
    home.mkdir()
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True, timeout=120)
    env = {**os.environ, "HOME": str(home)}
    cmd = [sys.executable, "-m", "tools.ci.publish", "--repo", str(repo)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    html = repo / "html"
    for page in html.glob("*.html"):
        assert offline_site.external_assets(page.read_text()) == [], page
    handler = functools.partial(_QuietHandler, directory=str(html))
    server = _QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield html, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a page left mid-download
            super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
        # the network off: no host name but localhost resolves
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(driver, script: str, timeout: float = 60.0):
    """Poll a JavaScript expression until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {script};")
        if value:
            return value
        time.sleep(0.25)
    logs = "\n".join(e["message"] for e in driver.get_log("browser"))
    raise AssertionError(f"timed out waiting for: {script}\npage: {driver.current_url}\n{logs}")


def _errors(driver) -> list[dict]:
    """Console errors; a missing /favicon.ico (the browser asks for it unbidden) is not one."""
    logs = driver.get_log("browser")
    return [e for e in logs if e["level"] == "SEVERE" and "/favicon.ico " not in e["message"]]


def _requests_beyond(driver, origin: str) -> list[str]:
    """Network addresses the pages asked for beyond ``origin`` (the browser's own chrome://
    pages and data: URLs are not the network)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    network = ("http:", "https:", "ws:", "wss:", "ftp:")
    return [u for u in urls if u.startswith(network) and not u.startswith(origin)]


def _screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


#: flot keeps its plot on the placeholder: the non-null points of the series it drew
_POINTS = (
    "(function () { var p = $('#main-graph').data('plot'); if (!p) return 0;"
    " return p.getData().reduce(function (n, s) { return n + s.data.filter("
    "function (d) { return d[1] !== null; }).length; }, 0); })()"
)
#: pixels of the base canvas in the colour of some series (its lines and points, not the grid)
_SERIES_PIXELS = """
var plot = $('#main-graph').data('plot');
var canvas = $('#main-graph canvas.flot-base')[0];
var pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
var colours = plot.getData().map(function (s) { return $.color.parse(s.color); });
var count = 0;
for (var i = 0; i < pixels.length; i += 4) {
  for (var k = 0; k < colours.length; k++) {
    var c = colours[k];
    if (Math.abs(pixels[i] - c.r) + Math.abs(pixels[i + 1] - c.g)
        + Math.abs(pixels[i + 2] - c.b) < 40 && pixels[i + 3] > 200) { count++; break; }
  }
}
return count;
"""


def _check_graph_drew(driver, origin: str, name: str) -> int:
    """The graph page's plot: points, series pixels, no error banner; its series count."""
    points = _wait(driver, _POINTS)
    series = driver.execute_script("return $('#main-graph').data('plot').getData().length;")
    assert points >= 1 and series >= 1, (points, series)
    assert driver.execute_script(_SERIES_PIXELS) > 50  # lines and points, in series colours
    assert "error.html" not in driver.current_url
    assert not driver.execute_script("return $('#error').is(':visible');")  # asv's banner
    assert "continental origin" not in driver.find_element("css selector", "body").text
    assert _screenshot(driver, name).stat().st_size > 10_000  # a rendered page
    assert _errors(driver) == []
    assert _requests_beyond(driver, origin) == []
    return series


@pytest.mark.slow
def test_front_page_opens_on_the_leaderboard(site, browser):
    _html, url = site
    browser.get(f"{url}/")
    _wait(browser, "window.location.pathname.endsWith('/leaderboard/index.html')")
    _wait(browser, "document.readyState === 'complete'")
    assert browser.find_element("css selector", "h1").text == "attnbench leaderboard"
    machines = browser.find_elements("css selector", "h2")
    assert len(machines) >= 2
    _screenshot(browser, "site-leaderboard.png")
    assert _errors(browser) == []
    assert _requests_beyond(browser, url) == []


@pytest.mark.slow
def test_a_workload_link_opens_its_graph_for_one_machine(site, browser):
    _html, url = site
    browser.get(f"{url}/leaderboard/index.html")
    link = browser.find_element("css selector", "h4 a")
    href = link.get_attribute("href")
    query = href.split("?", 1)[1]
    machines = [p for p in query.split("&") if p.startswith("machine=")]
    implementations = [p for p in query.split("&") if p.startswith("p-implementation=")]
    assert len(machines) == 1 and 1 <= len(implementations) <= 8
    browser.get_log("browser")
    browser.get_log("performance")
    link.click()
    _wait(browser, "window.location.pathname.endsWith('/index.html')")
    series = _check_graph_drew(browser, url, "site-leaderboard-graph.png")
    assert series <= len(implementations)  # one machine: one series per implementation at most


@pytest.mark.slow
def test_asv_grid_lists_benchmarks_and_a_graph_draws(site, browser):
    _html, url = site
    browser.get(f"{url}/index.html#/")
    count = _wait(browser, "window.$ && $('a.benchmark-container').length")
    assert count > 1
    assert _errors(browser) == []
    link = browser.find_element("css selector", f'a.benchmark-container[href="#{BENCHMARK}"]')
    link.click()
    _check_graph_drew(browser, url, "site-graph.png")
    assert BENCHMARK in browser.current_url
