#!/usr/bin/env python
"""Make the published dashboard work without internet access.

asv 0.6's ``index.html`` loads jQuery, flot, bootstrap, stupidtable and md5 from CDNs
(code.jquery.com, cdnjs, jsdelivr); where those are unreachable the page shows
"Can not determine continental origin of swallow" and no graph. This copies the
same libraries from ``asv_bench/vendor/`` (the copies asv 0.5.1 shipped, all MIT, see
vendor/README.md) into ``html/vendor/`` and points the page at them.

  cd asv_bench && asv publish && python offline_html.py && asv preview

Idempotent; run it after every ``asv publish`` (which rewrites index.html).
"""
import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# CDN URL suffix -> local file in vendor/
LOCAL = {
    "jquery-3.3.1.min.js": "jquery-3.3.1.min.js",
    "flot/0.8.3/jquery.flot.min.js": "jquery.flot-0.8.3.min.js",
    "flot/0.8.3/jquery.flot.time.min.js": "jquery.flot-0.8.3.time.min.js",
    "flot/0.8.3/jquery.flot.selection.min.js": "jquery.flot-0.8.3.selection.min.js",
    "flot/0.8.3/jquery.flot.categories.min.js": "jquery.flot-0.8.3.categories.min.js",
    "jquery.flot.orderBars.js": "jquery.flot.orderBars.js",
    "stupidtable.min.js": "stupidtable.js",
    "md5.min.js": "md5.js",
    "bootstrap.min.js": "bootstrap-3.1.0.min.js",
    "bootstrap.min.css": "bootstrap-3.1.0.min.css",
}

TAG = re.compile(r'<(script|link)\b[^>]*?(?:src|href)="(https?://[^"]+)"[^>]*>', re.S)


def localize(html):
    missing = []

    def repl(m):
        kind, url = m.group(1), m.group(2)
        for suffix, local in LOCAL.items():
            if url.endswith(suffix):
                if kind == "script":
                    return f'<script src="vendor/{local}" onerror="js_load_failure()">'
                return f'<link rel="stylesheet" href="vendor/{local}">'
        if kind == "link" and "alternate" in m.group(0):
            return m.group(0)
        missing.append(url)
        return m.group(0)

    return TAG.sub(repl, html), missing


def main(html_dir=None):
    html_dir = html_dir or os.path.join(HERE, "html")
    index = os.path.join(html_dir, "index.html")
    if not os.path.exists(index):
        sys.exit(f"{index} not found: run `asv publish` first")
    vendor_out = os.path.join(html_dir, "vendor")
    os.makedirs(vendor_out, exist_ok=True)
    for name in set(LOCAL.values()):
        shutil.copy2(os.path.join(HERE, "vendor", name), vendor_out)
    with open(index, encoding="utf-8") as f:
        html = f.read()
    html, missing = localize(html)
    with open(index, "w", encoding="utf-8") as f:
        f.write(html)
    for url in missing:
        print(f"warning: no local copy for {url}; the page still loads it from the network")
    print(f"{index}: JavaScript/CSS now served from {vendor_out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
