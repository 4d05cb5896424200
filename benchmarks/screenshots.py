"""Screenshots of the web app on MovieLens-100k, for the README (docs/screenshots/).

Trains itemknn and popularity on ml-100k into a temporary registry (real offline
metrics), starts the app with uvicorn on a free port, and fills it with:

- an A/B experiment "itemknn vs popularity" whose traffic replays real ml-100k users:
  each replayed user's first 80% of ratings become events, the user opens their
  recommendations, and a shown title counts as a click (``play``) when the real user
  rated it later (``complete`` when they rated it 4 or 5);
- a demo user whose tastes drift over six weeks (family films and comedies first, then
  science fiction and adventure), so the home rows and the insights charts have a story.

Then Debian's Chromium (never a downloaded browser) takes 1280×800 screenshots of the
home page, a title page, the insights page and the admin page; PNGs are quantised to
256 colours (Pillow, when installed) to stay small.

    python benchmarks/screenshots.py --out docs/screenshots
"""

from __future__ import annotations

import argparse
import io
import secrets
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 800}
PASSWORD = "popcorn-and-a-sofa"
#: (title, event, days ago): family/comedy first, then sci-fi and adventure.
DEMO_STORY: list[tuple[str, str, float]] = [
    ("Toy Story", "complete", 42),
    ("Aladdin", "like", 41),
    ("Lion King, The", "complete", 40),
    ("Beauty and the Beast", "like", 38),
    ("Mrs. Doubtfire", "play", 37),
    ("Forrest Gump", "complete", 35),
    ("Groundhog Day", "like", 33),
    ("Babe", "complete", 31),
    ("Home Alone", "dislike", 30),
    ("Princess Bride, The", "like", 27),
    ("Back to the Future", "complete", 24),
    ("E.T. the Extra-Terrestrial", "like", 21),
    ("Star Wars", "complete", 18),
    ("Empire Strikes Back, The", "complete", 16),
    ("Raiders of the Lost Ark", "like", 14),
    ("Terminator, The", "complete", 12),
    ("Alien", "like", 10),
    ("Blade Runner", "complete", 8),
    ("Return of the Jedi", "play", 6),
    ("Star Trek: First Contact", "like", 4),
    ("Independence Day (ID4)", "dislike", 3),
    ("Contact", "complete", 2),
    ("Fifth Element, The", "play", 1),
    ("Twelve Monkeys", "like", 0.5),
]
DEMO_RATINGS = {"Star Wars": 5, "Empire Strikes Back, The": 5, "Home Alone": 2, "Blade Runner": 4}


def train_registry(root: Path) -> Any:
    from primetime.lifecycle import train_for_serving
    from primetime.registry import ModelRegistry

    reg = ModelRegistry(root)
    for name in ("popularity", "itemknn"):
        if name not in reg.names():
            mv = train_for_serving(name, data="ml-100k", registry=reg)
            print(f"trained {mv.name}:{mv.version}: {mv.metrics}")
    reg.promote("itemknn", reg.latest("itemknn").version)
    return reg


def serve(app: Any) -> tuple[str, Any, threading.Thread]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the app did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


def signup(http: httpx.Client, name: str) -> dict[str, str]:
    r = http.post("/api/v1/auth/signup", json={"username": name, "password": PASSWORD})
    r.raise_for_status()
    http.cookies.clear()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def replay_experiment(http: httpx.Client, ds: Any, admin: dict[str, str], users: int) -> None:
    """Real ml-100k users as experiment traffic (see the module docstring)."""
    r = http.post(
        "/api/v1/admin/experiments",
        headers=admin,
        json={
            "id": "knn-vs-pop",
            "name": "itemknn vs popularity",
            "arms": [
                {"name": "control", "model_version": "popularity:v1"},
                {"name": "treatment", "model_version": "itemknn:v1"},
            ],
        },
    )
    r.raise_for_status()
    inter = ds.interactions
    rng = np.random.default_rng(7)
    chosen = rng.choice(np.arange(1, inter.n_users + 1), size=users, replace=False)
    now = time.time()
    for k, u in enumerate(chosen):
        rows = np.flatnonzero(inter.user_idx == u)
        rows = rows[np.argsort(inter.timestamp[rows], kind="stable")]
        cut = int(len(rows) * 0.8)
        past, future = rows[:cut], rows[cut:]

        def item_id(row: int) -> str:
            return inter.items.id(int(inter.item_idx[row]))

        h = signup(http, f"ml-user-{u}")
        span = max(1, len(past))
        events = [
            {
                "item_id": item_id(int(r_)),
                "event_type": "rate",
                "rating": float(inter.rating[r_]),
                "ts": now - 60 * 86_400 * (1 - j / span),
            }
            for j, r_ in enumerate(past[-200:])
        ]
        if events:
            http.post("/api/v1/events", headers=h, json={"events": events}).raise_for_status()
        recs = http.get("/api/v1/recommendations", headers=h, params={"k": 10}).json()
        later = {item_id(int(r_)): float(inter.rating[r_]) for r_ in future}
        acted = []
        for pos, it in enumerate(recs["items"]):
            if it["item_id"] in later:
                acted.append(
                    {
                        "item_id": it["item_id"],
                        "event_type": "play",
                        "position": pos,
                        "request_id": recs["request_id"],
                    }
                )
                if later[it["item_id"]] >= 4:
                    acted.append(
                        {
                            "item_id": it["item_id"],
                            "event_type": "complete",
                            "position": pos,
                            "request_id": recs["request_id"],
                        }
                    )
        if acted:
            http.post("/api/v1/events", headers=h, json={"events": acted}).raise_for_status()
        if (k + 1) % 20 == 0:
            print(f"  replayed {k + 1}/{users} ml-100k users")


def demo_user(http: httpx.Client, svc: Any) -> None:
    h = signup(http, "demo")
    http.put(
        "/api/v1/me/onboarding", headers=h, json={"genres": ["Comedy", "Sci-Fi"], "titles": []}
    ).raise_for_status()
    now = time.time()
    events = []
    for title, kind, days in DEMO_STORY:
        hits = [i for i in svc.search(title, 5) if svc.titles[i - 1] == title]
        if not hits:
            print(f"  (no title {title!r} in the catalog; skipped)")
            continue
        item = svc.item_ids[hits[0] - 1]
        events.append({"item_id": item, "event_type": kind, "ts": now - days * 86_400})
        if title in DEMO_RATINGS:
            events.append(
                {
                    "item_id": item,
                    "event_type": "rate",
                    "rating": DEMO_RATINGS[title],
                    "ts": now - days * 86_400 + 60,
                }
            )
    http.post("/api/v1/events", headers=h, json={"events": events}).raise_for_status()
    print(f"demo user: {len(events)} events over six weeks")


def save_png(png: bytes, path: Path, *, max_bytes: int = 280_000) -> None:
    """Write ``png``; above ``max_bytes`` it is reduced to 256 colours with dithering
    (Pillow, which matplotlib brings), which keeps gradients smooth at a third the size."""
    try:
        from PIL import Image
    except ImportError:
        path.write_bytes(png)
        return
    if len(png) <= max_bytes:
        path.write_bytes(png)
        return
    img = Image.open(io.BytesIO(png)).convert("RGB")
    palette = img.quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    img.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    ap.add_argument("--registry", type=Path, default=None, help="reuse a registry folder")
    ap.add_argument("--users", type=int, default=80, help="ml-100k users replayed in the A/B test")
    ap.add_argument(
        "--tmdb", action="store_true", help="TMDb posters ($PRIMETIME_TMDB_API_KEY), not SVG"
    )
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from primetime.data.open import open_dataset
    from primetime.service.app import create_app
    from primetime.service.settings import Settings

    if not Path(CHROMIUM).exists():
        sys.exit(f"no Chromium at {CHROMIUM}: apt-get install chromium (or `make test`)")
    tmp = Path(tempfile.mkdtemp(prefix="primetime-shots-"))
    ds = open_dataset("ml-100k").dataset
    registry = train_registry(args.registry or tmp / "registry")
    admin_token = secrets.token_urlsafe(24)
    settings = Settings(
        environment="test",
        database_url=f"sqlite:///{tmp / 'service.db'}",
        registry_dir=registry.root,
        models=["itemknn", "popularity"],
        admin_token=admin_token,
        rate_limit_per_minute=0,
        _env_file=None,  # type: ignore[call-arg]
    )
    app = create_app(settings, dataset=ds, registry=registry)
    if not args.tmdb:
        app.state.tmdb = None  # the README shows the generated posters
    base, server, thread = serve(app)
    try:
        with httpx.Client(base_url=base, timeout=60) as http:
            replay_experiment(http, ds, {"X-Admin-Token": admin_token}, args.users)
            demo_user(http, app.state.svc)
        args.out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            ctx = browser.new_context(viewport=VIEWPORT, reduced_motion="reduce")
            page = ctx.new_page()
            page.goto(f"{base}/signin")
            page.get_by_label("Username").fill("demo")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in", exact=True).click()
            page.wait_for_url(f"{base}/")

            def shot(name: str) -> None:
                page.wait_for_load_state("networkidle")
                path = args.out / f"{name}.png"
                save_png(page.screenshot(), path)
                print(f"{path}: {path.stat().st_size / 1024:.0f} KiB")

            page.locator("section.row .card").nth(1).hover()  # a card shows its reason
            shot("home")
            hero = page.locator(".hero a.btn").get_attribute("href")
            page.goto(f"{base}{hero}")
            page.get_by_role("button", name="Rate", exact=False).nth(3).click()
            page.wait_for_function("() => document.getElementById('status').textContent !== ''")
            page.evaluate("document.getElementById('status').classList.remove('show')")
            shot("title")
            page.goto(f"{base}/insights")
            shot("insights")
            page.goto(f"{base}/admin")
            page.get_by_label("Admin token").fill(admin_token)
            page.get_by_role("button", name="Open the admin pages").click()
            page.wait_for_url(f"{base}/admin")
            page.locator("#h-experiments").scroll_into_view_if_needed()
            page.evaluate(
                "window.scrollTo(0, document.getElementById('admin-models').offsetTop - 70)"
            )
            shot("admin")
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)


if __name__ == "__main__":
    main()
