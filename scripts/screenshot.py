"""Save a screenshot of the real page on the embedded model to assets/screenshot.png (for the README).

    .venv/bin/python scripts/screenshot.py [--out assets/screenshot.png]

Starts the app in this process on a free port, steps a sampled run in headless chromium, and saves the page.
Knows nothing about decoding; it only drives the page like a user.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "assets" / "screenshot.png"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from playground import ui

    ui.shared.REGISTRY.get(ui.DEFAULT_MODEL)
    demo = ui.build_demo()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **ui.launch_options())
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1500}, device_scale_factor=1)
            page.set_default_timeout(120_000)
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#dp-step")
            page.fill("#dp-n input", "8")
            page.click("#dp-step-n")
            page.wait_for_selector("#dp-text [data-step='7']")
            page.click("#dp-step-n")
            page.wait_for_selector("#dp-text [data-step='15']")
            time.sleep(1.0)  # let the browser paint the charts' images
            page.screenshot(path=args.out, full_page=False)
            browser.close()
    finally:
        demo.close()
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
