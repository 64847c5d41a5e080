"""asv's site without a network: its pages load jQuery, flot, bootstrap and three small
plugins from CDNs; here they load copies shipped in ``site_assets/`` (each from its pinned npm
package, licence beside it; ``site_assets/README.md`` lists them).

:func:`make_offline` copies the copies into ``<html>/vendor/`` and points asv's pages at them;
:func:`external_assets` lists what a page still fetches from elsewhere. The asv plugin runs
:func:`make_offline` at the end of every ``asv publish``; tools.ci.publish runs it again
(it is idempotent) and fails if anything external remains.
"""

from __future__ import annotations

import re
import shutil
from importlib import resources
from pathlib import Path

from .atomic import write_text
from .errors import AttnbenchError

#: asv 0.6.6's CDN addresses -> the copy under site_assets/ (same library and version;
#: cdnjs's flot and stupidtable are their own minified builds, so those bytes differ)
ASSETS = {
    "https://code.jquery.com/jquery-3.3.1.min.js": "jquery-3.3.1/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js":
        "flot-0.8.3/jquery.flot.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js":
        "flot-0.8.3/jquery.flot.time.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js":
        "flot-0.8.3/jquery.flot.selection.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js":
        "flot-0.8.3/jquery.flot.categories.js",
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js":
        "flot-orderbars-1.0.0/jquery.flot.orderBars.js",
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js":
        "stupid-table-plugin-1.1.3/stupidtable.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js":
        "blueimp-md5-2.19.0/md5.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js":
        "bootstrap-3.1.1/js/bootstrap.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css":
        "bootstrap-3.1.1/css/bootstrap.min.css",
}  # fmt: skip
VENDOR = "vendor"
#: a tag that loads a script or a style sheet, and its address
_TAG = re.compile(r"<(?:script|link)\b[^>]*>", re.IGNORECASE)
_URL = re.compile(r"""\b(src|href)\s*=\s*(["'])(https?:)?//([^"']*)\2""", re.IGNORECASE)
#: attributes that only make sense for a cross-origin copy
_CROSS_ORIGIN = re.compile(r"""\s+(?:integrity|crossorigin|referrerpolicy)\s*=\s*(["'])[^"']*\1""")


class OfflineSiteError(AttnbenchError):
    """A page loads something this module has no copy of; the message names it."""


def _loads_code(tag: str) -> bool:
    """A <script>, or a <link> whose rel is a style sheet (not an Atom feed, an icon, ...)."""
    if tag.lower().startswith("<script"):
        return True
    return bool(re.search(r"""rel\s*=\s*["']?stylesheet""", tag, re.IGNORECASE))


def external_assets(page: str) -> list[str]:
    """The scripts and style sheets ``page`` (HTML) fetches from another host."""
    found = []
    for tag in _TAG.findall(page):
        match = _URL.search(tag)
        if match and _loads_code(tag):
            found.append(f"{match.group(3) or ''}//{match.group(4)}")
    return found


def _localize(page: str, prefix: str) -> str:
    def tag(match: re.Match[str]) -> str:
        text = match.group(0)
        url = _URL.search(text)
        if not url or not _loads_code(text):
            return text
        address = f"{url.group(3) or 'https:'}//{url.group(4)}"
        if address not in ASSETS:
            raise OfflineSiteError(f"no local copy of {address} (add it to site_assets/)")
        local = f"{prefix}{VENDOR}/{ASSETS[address]}"
        text = text[: url.start()] + f'{url.group(1)}="{local}"' + text[url.end() :]
        return _CROSS_ORIGIN.sub("", text)

    return _TAG.sub(tag, page)


def _copy_assets(html: Path) -> None:
    source = resources.files("attnbench") / "site_assets"
    with resources.as_file(source) as folder:
        shutil.copytree(folder, html / VENDOR, dirs_exist_ok=True)


def make_offline(html_dir: str | Path) -> list[Path]:
    """Ship the copies with the site and point every page of ``html_dir`` (its top level, as
    asv writes them) at them; the pages changed."""
    html = Path(html_dir)
    if not html.is_dir():
        raise OfflineSiteError(f"{html}: no such directory (asv's html_dir)")
    _copy_assets(html)
    changed = []
    for page in sorted(html.glob("*.html")):
        text = page.read_text(encoding="utf-8")
        local = _localize(text, prefix="")
        if local != text:
            write_text(page, local)
            changed.append(page)
    return changed
