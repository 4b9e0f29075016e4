"""A local news site for the fetch and feed tests: HTTP servers on 127.0.0.1 (one port = one
host) with pages (``/article/N``: the news pages of the shared evaluation data, else pages made of
the seeds; ``/story/N``: a developing story whose text changes with each revision), an RSS feed, a sitemap and a sitemap index (all answering 304 to a matching
If-None-Match), a robots.txt, and the troubles a crawler meets (redirects, 404, 500s, 429 with
Retry-After, slow and hanging answers, a huge page, a PDF). Each host records every request: when
it started and how many were in flight, so a test can check the fetcher's politeness."""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

from tests.conftest import ROOT, SEEDS

EVAL = __import__("pathlib").Path(os.environ.get("PIPELINE_EVAL_DIR", ROOT.parent / "shared" / "eval"))
PAGES = 12  # news pages the site serves as /article/0 .. /article/11


def seed_page(n: int, updates: int = 0) -> dict:
    """A page made of seed ``n``: its title, its paragraphs, then ``updates`` paragraphs of updates."""
    seeds = sorted(SEEDS.glob("*.txt"))
    title, _, body = seeds[n % len(seeds)].read_text().partition("\n")
    lines = [line for line in body.splitlines() if line.strip()]
    lines += [f"Pembaruan {k + 1}: pihak berwenang menyampaikan keterangan tambahan kepada wartawan mengenai "
              f"perkembangan terbaru peristiwa ini pada hari ke-{k + 1}." for k in range(updates)]
    paragraphs = "".join(f"<p>{line}</p>" for line in lines)
    html = (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body><nav>Beranda | "
            f"Nasional</nav><article><h1>{title}</h1>{paragraphs}</article><footer>Hak cipta</footer></body></html>")
    return {"url": f"https://seed.example/{n}", "html": html, "gold_text": "\n".join(lines), "title": title}


@functools.cache
def news_pages(n: int = PAGES) -> tuple[dict, ...]:
    """``n`` news pages ({url, html, gold_text}) of the shared evaluation data (the article extraction
    benchmark's pages) when it is there, else pages made of the seeds."""
    path = EVAL / "extraction-aeb.jsonl.gz"
    if not path.exists():  # the seeds are rendered pages, boilerplate lines and all: their longest line is text
        return tuple({**page, "gold_text": max(page["gold_text"].splitlines(), key=len)}
                     for page in (seed_page(i) for i in range(n)))
    pages = []
    with gzip.open(path, "rb") as fh:
        for line in fh:
            page = orjson.loads(line)
            if page.get("html") and page.get("url") and len(page.get("gold_text") or "") > 400:
                pages.append(page)
            if len(pages) == n:
                break
    return tuple(pages)


def article(n: int) -> bytes:
    return news_pages()[n % PAGES]["html"].encode()


class Host:
    def __init__(self, robots: str = "User-agent: *\nDisallow: /private/\n", huge_bytes: int = 2_000_000):
        self.robots = robots
        self.huge_bytes = huge_bytes
        self.starts: list[tuple[float, str]] = []  # (monotonic time, path) of every request
        self.in_flight = 0
        self.max_in_flight = 0
        self.hits: dict[str, int] = defaultdict(int)
        self.not_modified = 0  # 304 answers
        self.feed_items: list[int] = [0, 1]  # the articles the feed and the sitemap list
        self.feed_stories: list[int] = []  # the stories the feed lists (updated with each revision)
        self.updated: dict[int, str] = {}  # article -> its update time, when it was updated
        self.revisions: dict[int, int] = defaultdict(int)  # story -> update paragraphs it has now
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def page_starts(self) -> list[float]:
        return [t for t, path in self.starts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send(self, status: int, body: bytes = b"", kind: str = "text/html; charset=utf-8", **headers):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self):  # noqa: N802
                path = self.path
                with host.lock:
                    host.starts.append((time.monotonic(), path))
                    host.hits[path] += 1
                    hits = host.hits[path]
                    host.in_flight += 1
                    host.max_in_flight = max(host.max_in_flight, host.in_flight)
                try:
                    time.sleep(0.05)  # every answer takes a moment, so overlapping requests show
                    self.answer(path, hits)
                finally:
                    with host.lock:
                        host.in_flight -= 1

            def listing(self, body: bytes, kind: str):
                tag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == tag:
                    with host.lock:
                        host.not_modified += 1
                    return self.send(304, b"", kind, ETag=tag)
                return self.send(200, body, kind, ETag=tag)

            def answer(self, path: str, hits: int):
                if path == "/feed.xml":
                    items = "".join(f"<item><title>Berita {n}</title><link>{host.url}/article/{n}</link>"
                                    f"<pubDate>{host.updated.get(n, 'Mon, 30 Nov 2026 08:00:00 GMT')}</pubDate></item>"
                                    for n in host.feed_items)
                    items += "".join(f"<item><title>Kabar {n}</title><link>{host.url}/story/{n}</link><pubDate>Mon, 30 "
                                     f"Nov 2026 08:{host.revisions[n]:02d}:00 GMT</pubDate></item>" for n in host.feed_stories)
                    return self.listing(f"<?xml version='1.0'?><rss version='2.0'><channel><title>Site</title>"
                                        f"{items}</channel></rss>".encode(), "application/rss+xml")
                if path == "/sitemap.xml":
                    urls = "".join(f"<url><loc>{host.url}/article/{n}</loc><lastmod>"
                                   f"{host.updated.get(n, '2026-11-30')}</lastmod></url>" for n in host.feed_items)
                    return self.listing(("<?xml version='1.0'?><urlset xmlns='http://www.sitemaps.org/schemas/"
                                         f"sitemap/0.9'>{urls}</urlset>").encode(), "application/xml")
                if path == "/sitemap_index.xml":
                    return self.listing(("<?xml version='1.0'?><sitemapindex xmlns='http://www.sitemaps.org/schemas/"
                                         f"sitemap/0.9'><sitemap><loc>{host.url}/sitemap.xml</loc></sitemap>"
                                         "</sitemapindex>").encode(), "application/xml")
                if path == "/robots.txt":
                    return self.send(200, host.robots.encode(), "text/plain")
                if path.startswith("/article/"):
                    return self.send(200, article(int(path.rsplit("/", 1)[1])))
                if path.startswith("/story/"):
                    n = int(path.rsplit("/", 1)[1])
                    return self.send(200, seed_page(n, host.revisions[n])["html"].encode())
                if path.startswith("/moved/"):
                    return self.send(301, b"", Location=f"/article/{path.rsplit('/', 1)[1]}")
                if path == "/flaky":  # 500 twice, then the page
                    return self.send(500, b"oops") if hits <= 2 else self.send(200, article(3))
                if path == "/busy":  # 429 once, asking for 1 s
                    return self.send(429, b"slow down", Retry_After="1") if hits == 1 else self.send(200, article(4))
                if path == "/overloaded":
                    return self.send(503, b"later", Retry_After="3600")
                if path == "/hang":
                    time.sleep(5)
                    return self.send(200, article(0))
                if path == "/huge":
                    return self.send(200, b"<html><body>" + b"<p>kata</p>" * (host.huge_bytes // 11) + b"</body></html>")
                if path == "/report.pdf":
                    return self.send(200, b"%PDF-1.7 not a page", "application/pdf")
                if path.startswith("/private/"):
                    return self.send(200, article(1))
                return self.send(404, b"<html>not here</html>")

        return Handler
