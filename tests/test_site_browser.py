"""The published site in a real browser (``slow``): headless Chromium through selenium.

A clone of this repository (with its committed results: several machines, several commits) is
published by tools/ci/publish.py; html/ is served on localhost; the test opens the index, opens
one attnbench benchmark's graph, checks that the plot drew points and that the console logged
no error, and saves a screenshot under .artifacts/. It opens the leaderboard page too where the
site has one. Skips, saying what is missing, without selenium, Chromium or chromedriver.

asv's pages load jQuery, flot and bootstrap from CDNs. Offline, ``ATTNBENCH_CDN_MIRROR`` may
name a directory laid out as ``<host>/<path>`` (e.g. ``code.jquery.com/jquery-3.3.1.min.js``):
Chromium then reaches those hosts on a local HTTPS server (self-signed, made with openssl),
and the pages' subresource-integrity hashes are dropped (copies from npm are not byte for byte
cdnjs's minified files). Online (as in CI) the site is served exactly as published.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .conftest import ROOT

ARTIFACTS = ROOT / ".artifacts"
BENCHMARK = "forward.ForwardMetrics.track_tflops"  # in every machine's committed results
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CDN_HOSTS = ("cdn.jsdelivr.net", "cdnjs.cloudflare.com", "code.jquery.com")


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
def cdn_args(tmp_path_factory) -> list[str]:
    """Chromium arguments for the CDN mirror; empty when the CDNs are reachable."""
    _find_browser()
    return _cdn_mirror(tmp_path_factory.mktemp("cdn"))


@pytest.fixture(scope="module")
def site(tmp_path_factory, cdn_args):
    """html/ of a clone of this repository, published, served on localhost."""
    if not (ROOT / ".git").exists():
        pytest.skip("needs the git repository (its history and committed results)")
    tmp = tmp_path_factory.mktemp("site")
    repo, home = tmp / "repo", tmp / "home"
    home.mkdir()
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True, timeout=120)
    env = {**os.environ, "HOME": str(home)}
    cmd = [sys.executable, str(ROOT / "tools" / "ci" / "publish.py"), "--repo", str(repo)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    html = repo / "html"
    if cdn_args:  # the mirror's copies cannot match the CDN files' integrity hashes
        for page in html.rglob("*.html"):
            page.write_text(re.sub(r'\s+integrity="[^"]*"', "", page.read_text()))
    handler = functools.partial(_QuietHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield html, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _MirrorHandler(_QuietHandler):
    """Serves <mirror>/<Host header>/<path>: one server stands in for every CDN host."""

    def translate_path(self, path: str) -> str:
        host = self.headers.get("Host", "").split(":")[0]
        return super().translate_path(f"/{host}{path}")

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")  # the pages load with crossorigin
        super().end_headers()


def _cdn_reachable() -> bool:
    try:
        socket.getaddrinfo(CDN_HOSTS[-1], 443)
        return True
    except OSError:
        return False


def _cdn_mirror(tmp: Path) -> list[str]:
    """Chromium arguments that send the CDN hosts to a local mirror (none when online)."""
    if _cdn_reachable():
        return []
    mirror = os.environ.get("ATTNBENCH_CDN_MIRROR", "")
    if not mirror or not Path(mirror).is_dir() or shutil.which("openssl") is None:
        pytest.skip(
            "asv's site loads jQuery, flot and bootstrap from CDNs this machine cannot reach; "
            "set ATTNBENCH_CDN_MIRROR to a <host>/<path> copy of them (and have openssl)"
        )
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run(
        [*openssl, "-subj", "/CN=cdn-mirror", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    handler = functools.partial(_MirrorHandler, directory=mirror)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    rules = ", ".join(f"MAP {host} 127.0.0.1:{port}" for host in CDN_HOSTS)
    return [f"--host-resolver-rules={rules}", "--ignore-certificate-errors"]


@pytest.fixture(scope="module")
def browser(cdn_args):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        *cdn_args,
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
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
    raise AssertionError(f"timed out waiting for: {script}\npage: {driver.title!r}\n{logs}")


def _errors(driver) -> list[dict]:
    """Console errors; a missing /favicon.ico (the browser asks for it unbidden) is not one."""
    logs = driver.get_log("browser")
    return [e for e in logs if e["level"] == "SEVERE" and "/favicon.ico " not in e["message"]]


def _screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


@pytest.mark.slow
def test_index_and_one_benchmark_graph(site, browser):
    _html, url = site
    browser.get(f"{url}/index.html")
    count = _wait(browser, "window.$ && $('a.benchmark-container').length")
    assert count > 1
    link = browser.find_element("css selector", f'a.benchmark-container[href="#{BENCHMARK}"]')
    link.click()
    # flot keeps its plot on the placeholder: the series it drew, and their points
    points = _wait(
        browser,
        "(function () { var p = $('#main-graph').data('plot'); if (!p) return 0;"
        " return p.getData().reduce(function (n, s) { return n + s.data.filter("
        "function (d) { return d[1] !== null; }).length; }, 0); })()",
    )
    series = browser.execute_script("return $('#main-graph').data('plot').getData().length;")
    assert points >= 2 and series >= 1, (points, series)
    assert BENCHMARK in browser.current_url
    path = _screenshot(browser, "site-graph.png")
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    assert _errors(browser) == []


@pytest.mark.slow
def test_leaderboard_page_loads_without_errors(site, browser):
    html, url = site
    page = html / "leaderboard" / "index.html"
    if not page.exists():
        pytest.skip("this site has no leaderboard page (no 'attnbench leaderboard' command)")
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(f"{url}/leaderboard/index.html")
    _wait(browser, "document.readyState === 'complete'")
    assert browser.find_element("css selector", "body").text.strip()
    _screenshot(browser, "site-leaderboard.png")
    assert _errors(browser) == []
