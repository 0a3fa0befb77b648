#!/usr/bin/env python3
"""cutover's benchmark: staging a site against the tools teams use today, side by side in one run.

Generates reproducible sites (fixed seed) and their "next build", starts a local S3 (s3s-fs) and
moto (SSM, and the whole-release comparison), then runs each tool in turn, alternating the order,
each to a fresh bucket; measures wall time and peak RSS with /usr/bin/time, checks that every
object arrived with its size, and writes the medians and ratios to cutover as Markdown and JSON
(bench/results-<sites>.md and .json).
Site D is shaped like a bundler's output (Vite): its fingerprinted assets live in the site's
shared pool, and besides the stage comparison the run counts the S3 requests of its redeploy
(through a counting proxy in front of moto), sets it beside `aws s3 sync` of the same next build,
and measures what ten successive builds store.
Run it through bench/run, which installs the tools.

Why a bucket per run, not only a prefix: s3s-fs answers every LIST by walking its whole bucket
directory, where S3 reads an index by prefix. cutover, `aws s3 sync` and rclone each list their
target, so in one shared bucket every run listed everything the runs before it had written and the
listing tools got slower run by run.
"""

import argparse
import collections
import hashlib
import http.client
import http.server
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
TOOLS = ROOT / ".tools" / "bin"
VENV = ROOT / ".venv-bench" / "bin"
# s3s-fs keeps its objects in memory-backed /dev/shm where there is one: on a disk, writeback and
# the discards of deleted files (this machine's disk is mounted with `discard`) slowed whichever
# tool ran at the time two- to three-fold, for minutes, while S3 has no such local disk.
SERVER_DATA = Path("/dev/shm") if Path("/dev/shm").is_dir() else WORK
CUTOVER = ROOT / "target" / "release" / "cutover"
MOTO_BUCKET = "bench"
PREFIX = "site"
KEYS = {
    "AWS_ACCESS_KEY_ID": "benchkey",
    "AWS_SECRET_ACCESS_KEY": "benchsecret",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}

# name: (small files, their size range, large files, their size range)
SITES = {
    "A": (1990, (2_000, 20_000), 10, (1_000_000, 5_000_000)),
    "B": (9950, (2_000, 20_000), 50, (1_000_000, 5_000_000)),
    "C": (100_000, (500, 4_000), 0, (0, 0)),
}
QUICK = {"quick": (190, (2_000, 20_000), 2, (1_000_000, 2_000_000))}
EXTENSIONS = ["js", "css", "html", "json", "svg", "png", "woff2"]


def generate(name, spec, seed):
    """Writes the site and its next build (2% changed, 5 added, 5 removed) unless already there."""
    small, small_range, large, large_range = spec
    root, nxt = WORK / "sites" / name, WORK / "sites" / f"{name}-next"
    marker = WORK / "sites" / f"{name}.done"
    if marker.exists() and marker.read_text() == repr(spec):
        return root, nxt
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(nxt, ignore_errors=True)
    rng = random.Random(seed)
    paths = []
    for i in range(small + large):
        size = rng.randint(*(small_range if i < small else large_range))
        path = root / f"d{i % 97}" / f"s{i % 13}" / f"f{i}.{rng.choice(EXTENSIONS)}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        paths.append(path)
    shutil.copytree(root, nxt)
    for path in rng.sample(paths, max(1, len(paths) // 50)):
        target = nxt / path.relative_to(root)
        target.write_bytes(rng.randbytes(target.stat().st_size))
    for path in rng.sample(paths, 5):
        (nxt / path.relative_to(root)).unlink()
    for i in range(5):
        (nxt / "added" / f"n{i}.js").parent.mkdir(parents=True, exist_ok=True)
        (nxt / "added" / f"n{i}.js").write_bytes(rng.randbytes(rng.randint(*small_range)))
    marker.write_text(repr(spec))
    return root, nxt


# Site D, shaped like a Vite build: (files, share of them fingerprinted under assets/, builds).
BUNDLED = {"D": (2000, 0.95, 10)}
# Rollup's (so Vite's) `[hash]`: 8 characters of url-safe base64.
HASH_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
# Asset kinds of a large app: (weight, extensions, size range in bytes); sizes are log-uniform.
ASSET_KINDS = [
    (55, ["js"], (1_000, 80_000)),
    (12, ["css"], (500, 40_000)),
    (8, ["svg"], (500, 20_000)),
    (14, ["png", "webp", "jpg"], (5_000, 400_000)),
    (8, ["woff2"], (15_000, 90_000)),
    (3, ["json", "wasm"], (1_000, 200_000)),
]
# A few large assets: a vendor chunk, a WebAssembly module, a video, a large picture.
LARGE_ASSETS = [("vendor", "js", 1_500_000), ("engine", "wasm", 2_800_000), ("intro", "mp4", 3_000_000),
                ("hero", "jpg", 900_000)]
STEMS = ["index", "vendor", "router", "store", "use-auth", "Button", "Modal", "Chart", "Table", "DatePicker",
         "settings", "dashboard", "profile", "billing", "Inter-SemiBold", "Inter-Regular", "logo", "icons",
         "markdown", "editor", "worker", "i18n-de", "i18n-fr", "page"]
# The files Vite copies from public/ unchanged, with their sizes; the rest of the unhashed files are pages.
PUBLIC_FILES = {"favicon.ico": 15_086, "robots.txt": 67, "sitemap.xml": 9_812, "manifest.webmanifest": 512,
                "apple-touch-icon.png": 9_544, "og-image.png": 84_210, "icons/icon-192.png": 11_203,
                "icons/icon-512.png": 38_911}


def log_uniform(rng, low, high):
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def asset_name(rng, stem, ext):
    """`assets/<name>-<hash>.<ext>`, as Vite writes an entry, a chunk or an asset.

    The default `shared-assets` rule takes a hash only with an uppercase letter, which 1.5% of
    Rollup's hashes lack (those are revalidated, not shared); the bench measures the pool, so such
    a hash gets its first character uppercased (or an `A`), drawing nothing more from `rng`.
    """
    digest = "".join(rng.choice(HASH_ALPHABET) for _ in range(8))
    if not any(c.isupper() for c in digest):
        digest = (digest[0].upper() if digest[0].isalpha() else "A") + digest[1:]
    return f"assets/{stem}-{digest}.{ext}"


def random_asset(rng, index):
    weights = [kind[0] for kind in ASSET_KINDS]
    _, extensions, (low, high) = rng.choices(ASSET_KINDS, weights)[0]
    stem = rng.choice(STEMS) if rng.random() < 0.3 else f"{rng.choice(STEMS)}{index}"
    return asset_name(rng, stem, rng.choice(extensions)), log_uniform(rng, low, high)


def page_paths(count):
    """index.html, about/index.html, 404.html, then docs and blog pages up to `count`."""
    pages = ["index.html", "about/index.html", "404.html"]
    for i in range(count - len(pages)):
        pages.append(f"{'docs' if i % 3 else 'blog'}/page-{i}/index.html")
    return pages


def write(root, path, data):
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def generate_bundled(name, spec, seed):
    """Writes site D's successive builds: each next one gives 2% of the assets new names and content
    (the old names leave the build, as with a bundler) and rewrites every page; the public files stay.

    Before timing anything, asks cutover itself (a stage into a scratch local store) that exactly
    the files under assets/ are fingerprinted by the default `shared-assets` rule."""
    files, hashed_share, builds = spec
    dirs = [WORK / "sites" / f"{name}-build{n + 1}" for n in range(builds)]
    marker = WORK / "sites" / f"{name}.done"
    if marker.exists() and marker.read_text() == repr(spec):
        return dirs
    rng = random.Random(seed)
    assets_count = round(files * hashed_share)
    pages = page_paths(files - assets_count - len(PUBLIC_FILES))
    assets = dict(random_asset(rng, i) for i in range(assets_count - len(LARGE_ASSETS)))
    assets.update((asset_name(rng, stem, ext), size) for stem, ext, size in LARGE_ASSETS)
    assert len(assets) == assets_count, "two assets drew the same name"
    page_sizes = {page: log_uniform(rng, 2_000, 40_000) for page in pages}
    for n, root in enumerate(dirs):
        shutil.rmtree(root, ignore_errors=True)
        if n > 0:
            for old in rng.sample(sorted(assets), assets_count // 50):
                size = assets.pop(old)
                ext = old.rsplit(".", 1)[1]
                stem = old.removeprefix("assets/")[:-len(f"-12345678.{ext}")]
                assets[asset_name(rng, stem, ext)] = max(200, int(size * rng.uniform(0.9, 1.1)))
        for path, size in PUBLIC_FILES.items():
            write(root, path, random.Random(path).randbytes(size))
        for page, size in page_sizes.items():
            write(root, page, rng.randbytes(max(500, int(size * rng.uniform(0.95, 1.05)))))
        for path, size in assets.items():
            # An asset's bytes follow from its name: one that keeps its name keeps its content.
            write(root, path, random.Random(path).randbytes(size))
    for root in dirs[:2]:
        check_fingerprinted(root)
    marker.write_text(repr(spec))
    return dirs


def local_stage(store, build, version):
    """The command that stages `build` as `version` into cutover's local store at `store`."""
    return [CUTOVER, "stage", "--store-dir", store, "--prefix", PREFIX, "--version", version, "--dist-dir", build]


def check_fingerprinted(build):
    """Stages `build` into a scratch local store and checks where cutover put each file."""
    with tempfile.TemporaryDirectory(prefix="cutover-bench-store-") as store:
        staged = subprocess.run(local_stage(store, build, "1"), env=base_env(), capture_output=True, text=True)
        if staged.returncode != 0:
            sys.exit(f"cutover stage into a local store failed ({staged.returncode}):\n{staged.stderr[-2000:]}")
        verify(sizes_under(Path(store) / "objects"), build, "1", pooled=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, process, what):
    deadline = time.time() + 60
    while time.time() < deadline:
        if process.poll() is not None:
            sys.exit(f"{what} exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit(f"{what} did not listen on {port}")


class CountingProxy:
    """A plain HTTP proxy in front of moto's S3 that counts the requests passing through, by method
    (a GET that lists is counted as LIST), and keeps each one's method and path: what a run costs in
    S3 requests, which S3 bills.

    It forwards each request as it came (SigV4 signs the Host header, which it keeps) over one
    upstream connection per client connection. Counted runs are not timed: the proxy adds latency."""

    def __init__(self, upstream_port):
        self.requests, self.lock = [], threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            upstream = None

            def log_message(self, *_):
                pass

            def forward(self):
                path, _, query = self.path.partition("?")
                listing = self.command == "GET" and ("/" not in path.strip("/") or any(
                    p.split("=")[0] in ("list-type", "prefix", "delimiter") for p in query.split("&")))
                with proxy.lock:
                    proxy.requests.append(("LIST" if listing else self.command, urllib.parse.unquote(self.path)))
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = self.read_chunked()
                else:
                    body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hop = ("connection", "expect", "transfer-encoding", "content-length", "keep-alive")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
                headers["Content-Length"] = str(len(body))
                for attempt in (1, 2):
                    try:
                        if self.upstream is None:
                            self.upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=120)
                        self.upstream.request(self.command, self.path, body=body, headers=headers)
                        response = self.upstream.getresponse()
                        data = response.read()
                        break
                    except (http.client.HTTPException, OSError):
                        self.upstream.close()
                        self.upstream = None
                        if attempt == 2:
                            raise
                self.send_response_only(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in hop:
                        self.send_header(key, value)
                no_body = self.command == "HEAD" or response.status in (204, 304)
                length = response.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length)
                self.end_headers()
                if not no_body:
                    self.wfile.write(data)

            def read_chunked(self):
                body = b""
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    body += self.rfile.read(size)
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return body

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self):
        """The requests since the last take: (method, path and query) each."""
        with self.lock:
            requests, self.requests = self.requests, []
        return requests

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Servers:
    """s3s-fs for the stage comparison, moto for SSM, site D (see BUNDLED) and the whole-release
    comparison."""

    def __enter__(self):
        self.data = Path(tempfile.mkdtemp(prefix="cutover-bench-s3s-", dir=SERVER_DATA))
        s3_port, moto_port = free_port(), free_port()
        self.s3 = subprocess.Popen(
            [TOOLS / "s3s-fs", "--host", "127.0.0.1", "--port", str(s3_port), "--access-key", KEYS["AWS_ACCESS_KEY_ID"],
             "--secret-key", KEYS["AWS_SECRET_ACCESS_KEY"], self.data],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.moto = subprocess.Popen([ROOT / ".venv" / "bin" / "moto_server", "-H", "127.0.0.1", "-p", str(moto_port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(s3_port, self.s3, "s3s-fs")
        wait_for_port(moto_port, self.moto, "moto")
        self.s3_url, self.moto_url = f"http://127.0.0.1:{s3_port}", f"http://127.0.0.1:{moto_port}"
        self.proxy = CountingProxy(moto_port)
        # Moto answers its first calls slowly; warm it up so no tool pays for it.
        aws(["s3api", "create-bucket", "--bucket", MOTO_BUCKET], self.moto_url)
        aws(["ssm", "put-parameter", "--name", "/bench/warm-up", "--value", "1", "--type", "String", "--overwrite"],
            self.moto_url)
        return self

    def bucket(self, name, on_moto=False):
        """A new, empty bucket: on s3s-fs a directory of its data root, on moto made through its API."""
        if on_moto:
            aws(["s3api", "create-bucket", "--bucket", name], self.moto_url)
        else:
            (self.data / name).mkdir()
        return name

    def stored(self, bucket, on_moto=False):
        """Every object in the bucket: key -> size (s3s-fs keeps plain files; moto is asked)."""
        if not on_moto:
            return sizes_under(self.data / bucket)
        listed = subprocess.run([VENV / "aws", "s3api", "list-objects-v2", "--bucket", bucket, "--endpoint-url",
                                 self.moto_url, "--output", "json"], env=base_env(), check=True, capture_output=True,
                                text=True)
        return {entry["Key"]: entry["Size"] for entry in json.loads(listed.stdout or "{}").get("Contents", [])}

    def __exit__(self, *_):
        self.proxy.close()
        for process in (self.s3, self.moto):
            process.terminate()
            process.wait()
        shutil.rmtree(self.data, ignore_errors=True)


def base_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CUTOVER_", "GITHUB_", "RCLONE_"))}
    env.update(KEYS)
    env["PATH"] = f"{VENV}:{TOOLS}:{env.get('PATH', '')}"
    return env


def aws(args, endpoint):
    subprocess.run([VENV / "aws", *args, "--endpoint-url", endpoint], env=base_env(), check=True,
                   stdout=subprocess.DEVNULL)


def timed(command, env):
    """Runs a command; returns (wall seconds, peak RSS in MB).

    Dirty pages left by earlier runs and clean-ups are written out first, so no run pays for the
    writeback of another."""
    os.sync()
    with tempfile.NamedTemporaryFile("r") as out:
        started = time.monotonic()
        result = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out.name, *map(str, command)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.monotonic() - started
        if result.returncode != 0:
            sys.exit(f"{command[0]} failed ({result.returncode}):\n{result.stderr[-2000:]}")
        rss_kb = int(out.read().strip().splitlines()[-1])
    return wall, rss_kb / 1024


def stage_command(tool, site, bucket, version, servers, s3_url=None):
    """The command and env that put `site` under `<PREFIX>/<version>/` in `bucket` with `tool`,
    through `s3_url` when given (the counting proxy), else straight to s3s-fs."""
    env = base_env()
    s3_url = s3_url or servers.s3_url
    target = f"s3://{bucket}/{PREFIX}/{version}/"
    if tool == "cutover":
        env.update(AWS_ENDPOINT_URL_S3=s3_url, AWS_ENDPOINT_URL_SSM=servers.moto_url,
                   CUTOVER_POINTER=f"ssm:/bench/{bucket}")
        return [CUTOVER, "stage", "--bucket", bucket, "--prefix", PREFIX, "--version", version, "--dist-dir", site], env
    if tool == "aws s3 sync":
        return [VENV / "aws", "s3", "sync", site, target, "--endpoint-url", s3_url, "--only-show-errors"], env
    if tool == "s5cmd cp":
        return [VENV / "s5cmd", "--endpoint-url", s3_url, "cp", f"{site}/*", target], env
    if tool == "rclone copy":
        env.pop("AWS_CA_BUNDLE", None)
        env.update(RCLONE_CONFIG_BENCH_TYPE="s3", RCLONE_CONFIG_BENCH_PROVIDER="Other",
                   RCLONE_CONFIG_BENCH_ENDPOINT=s3_url, RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=KEYS["AWS_ACCESS_KEY_ID"],
                   RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=KEYS["AWS_SECRET_ACCESS_KEY"],
                   RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true")
        return ["rclone", "copy", site, f"bench:{bucket}/{PREFIX}/{version}", "--transfers", "16"], env
    raise ValueError(tool)


def sizes_under(root):
    """Every file under `root` (a store keeping plain files): path relative to it -> size."""
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def verify(stored, site, version, pooled):
    """Every file of the site is stored under the version with its size, or when `pooled` (cutover's
    stage) a file under assets/ in the site's pool; `stored` maps the bucket's keys to sizes."""
    for relative, size in sizes_under(site).items():
        folder = "_shared" if pooled and relative.startswith("assets/") else version
        key = f"{PREFIX}/{folder}/{relative}"
        if stored.get(key) != size:
            sys.exit(f"{key} is missing or has the wrong size")


def make_live(servers, bucket, version):
    """Points the bucket's SSM parameter at `version`: the next stage copies from it."""
    aws(["ssm", "put-parameter", "--name", f"/bench/{bucket}", "--value", version, "--type", "String",
         "--overwrite"], servers.moto_url)


def sync_over(build, bucket, servers, s3_url=None):
    """`aws s3 sync --delete` of `build` over version 1, the way CI runs it: the build's files
    are all new (as after a fresh checkout and build), so sync compares their times and sizes."""
    now = time.time()
    for path in build.rglob("*"):
        os.utime(path, (now, now))
    command, env = stage_command("aws s3 sync", build, bucket, "1", servers, s3_url)
    return command + ["--delete"], env


def assets(build):
    return {p.relative_to(build) for p in (build / "assets").rglob("*") if p.is_file()}


def count_requests(servers, name, site, nxt):
    """The S3 requests of a full stage and of the redeploy after it, counted through the proxy
    (untimed, each tool in a fresh bucket), against the bound changed + unhashed + 5; for cutover's
    redeploy also each request that is not a file's upload (what the bound's 5 are for)."""
    changed = len(assets(nxt) - assets(site))
    unhashed = sum(1 for p in nxt.rglob("*") if p.is_file()) - len(assets(nxt))
    counts = {"changed": changed, "unhashed": unhashed, "bound": changed + unhashed + 5}

    def tally(requests):
        by_method = collections.Counter(method for method, _ in requests)
        return {"total": len(requests), **dict(sorted(by_method.items()))}

    for tool in ("cutover", "aws s3 sync"):
        bucket = servers.bucket(f"{name}-count-{tool.split()[0]}".lower(), on_moto=True)
        timed(*stage_command(tool, site, bucket, "1", servers, servers.proxy.url))
        counts[f"{tool} full stage"] = tally(servers.proxy.take())
        if tool == "cutover":
            make_live(servers, bucket, "1")
            timed(*stage_command(tool, nxt, bucket, "2", servers, servers.proxy.url))
        else:
            timed(*sync_over(nxt, bucket, servers, servers.proxy.url))
        requests = servers.proxy.take()
        counts[f"{tool} redeploy"] = tally(requests)
        if tool == "cutover":
            uploads = (f"/{bucket}/{PREFIX}/2/", f"/{bucket}/{PREFIX}/_shared/")
            # Without the bucket, the SDK's `x-id` and the value of a continuation token.
            shown = ((method, re.sub(r"x-id=[^&]*&?|(continuation-token)=[^&]*", r"\1", path.removeprefix(f"/{bucket}")))
                     for method, path in requests if not (method == "PUT" and path.startswith(uploads)))
            counts["cutover redeploy, besides uploads"] = [f"{method} {path.rstrip('?')}" for method, path in shown]
        print(f"{name}: {tool} requests, full stage {counts[f'{tool} full stage']}, "
              f"redeploy {counts[f'{tool} redeploy']}", flush=True)
    return counts


def store_builds(servers, name, builds):
    """Stages every build into one bucket, each with the one before live, no prune; then what the
    site's prefix holds (by the listing), by area, against one build's bytes."""
    bucket = servers.bucket(f"{name}-storage".lower(), on_moto=True)
    for n, build in enumerate(builds, start=1):
        if n > 1:
            make_live(servers, bucket, str(n - 1))
        timed(*stage_command("cutover", build, bucket, str(n), servers, servers.moto_url))
    listed = servers.stored(bucket, on_moto=True)
    for n, build in enumerate(builds, start=1):
        verify(listed, build, str(n), pooled=True)
    areas = collections.Counter()
    for key, size in listed.items():
        area = key.split("/")[1]
        areas[area if area.startswith("_") else "version folders"] += size
    one = sum(p.stat().st_size for p in builds[0].rglob("*") if p.is_file())
    # The least any store keeps of these builds (every distinct content once, nothing else).
    distinct = {hashlib.md5(p.read_bytes()).hexdigest(): p.stat().st_size
                for build in builds for p in build.rglob("*") if p.is_file()}
    stored = {"builds": len(builds), "one_build_bytes": one, "stored_bytes": sum(areas.values()),
              "distinct_content_bytes": sum(distinct.values()), "by_area": dict(sorted(areas.items()))}
    print(f"{name}: {len(builds)} builds store {stored['stored_bytes']:,} bytes, one build {one:,}: {stored['by_area']}",
          flush=True)
    return stored


def median(values):
    return statistics.median(values) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", default="A,B,C", help="which sites to stage (A, B, C, D)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each tool per site")
    parser.add_argument("--quick", action="store_true", help="a tiny site A, one run: keeps the benchmark working")
    args = parser.parse_args()
    # Stopped with SIGTERM, still stop the servers (the `with` below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    WORK.mkdir(parents=True, exist_ok=True)
    sites = QUICK if args.quick else {name: {**SITES, **BUNDLED}[name] for name in args.sites.split(",")}
    runs = 1 if args.quick else args.runs
    tools = ["cutover", "s5cmd cp", "rclone copy", "aws s3 sync"]
    results = {"sites": {}, "release": {}, "targets": {}}
    with Servers() as servers:
        # One untimed round on the quick site first: the first runs after the servers start were
        # slower for every tool (cold caches, the servers' own start-up work), two or three times.
        warm_up, _ = generate("quick", QUICK["quick"], seed=ord("A"))
        for tool in tools:
            command, env = stage_command(tool, warm_up, servers.bucket(f"warm-up-{tool.split()[0]}"), "1", servers)
            timed(command, env)
        for name, spec in sites.items():
            bundled = name in BUNDLED
            seed = ord(name[0])
            builds = generate_bundled(name, spec, seed) if bundled else generate(name, spec, seed)
            site, nxt = builds[0], builds[1]
            # Site D runs on moto: s3s-fs lists objects without their ETag, which the pool's check
            # needs (S3 and moto list it); against s3s-fs every pooled file looks changed (exit 4).
            on_moto = bundled
            s3_url = servers.moto_url if on_moto else None
            site_tools = ["cutover", "aws s3 sync"] if bundled else tools
            redeploys = ["cutover redeploy"]
            if bundled:
                redeploys += ["aws s3 sync redeploy", "cutover, local store", "cutover redeploy, local store"]
            times = {tool: [] for tool in site_tools + redeploys}
            rss = {tool: [] for tool in times}
            for run in range(runs):
                order = site_tools[run % len(site_tools):] + site_tools[:run % len(site_tools)]
                for tool in order:
                    bucket = servers.bucket(f"{name}-{tool.split()[0]}-{run}".lower(), on_moto)
                    command, env = stage_command(tool, site, bucket, "1", servers, s3_url)
                    wall, peak = timed(command, env)
                    verify(servers.stored(bucket, on_moto), site, "1", pooled=tool == "cutover")
                    times[tool].append(wall)
                    rss[tool].append(peak)
                    print(f"{name} run {run + 1}: {tool:<12} {wall:7.2f} s {peak:7.1f} MB", flush=True)
                # The next build, staged with the first one live: only what changed should cost.
                bucket = f"{name}-cutover-{run}".lower()
                make_live(servers, bucket, "1")
                command, env = stage_command("cutover", nxt, bucket, "2", servers, s3_url)
                wall, peak = timed(command, env)
                verify(servers.stored(bucket, on_moto), nxt, "2", pooled=True)
                times["cutover redeploy"].append(wall)
                rss["cutover redeploy"].append(peak)
                print(f"{name} run {run + 1}: next build  {wall:7.2f} s {peak:7.1f} MB", flush=True)
                if bundled:
                    # What users would otherwise run: sync the next build over the live one.
                    bucket = f"{name}-aws-{run}".lower()
                    command, env = sync_over(nxt, bucket, servers, s3_url)
                    wall, peak = timed(command, env)
                    verify(servers.stored(bucket, on_moto), nxt, "1", pooled=False)
                    times["aws s3 sync redeploy"].append(wall)
                    rss["aws s3 sync redeploy"].append(peak)
                    print(f"{name} run {run + 1}: next build, aws s3 sync {wall:7.2f} s {peak:7.1f} MB", flush=True)
                    # Both stages again into the local store in memory, where a request costs next
                    # to nothing (as on s3s-fs): what is left is the redeploy's own work.
                    store = Path(tempfile.mkdtemp(prefix="cutover-bench-store-", dir=SERVER_DATA))
                    for tool, build, version in (("cutover, local store", site, "1"),
                                                 ("cutover redeploy, local store", nxt, "2")):
                        wall, peak = timed(local_stage(store, build, version), base_env())
                        times[tool].append(wall)
                        rss[tool].append(peak)
                        print(f"{name} run {run + 1}: {tool} {wall:7.2f} s {peak:7.1f} MB", flush=True)
                    verify(sizes_under(store / "objects"), nxt, "2", pooled=True)
                    shutil.rmtree(store)
            files = sum(1 for p in site.rglob("*") if p.is_file())
            size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
            cutover = median(times["cutover"])
            results["sites"][name] = {
                "files": files,
                "bytes": size,
                "tools": {tool: {"median_s": median(times[tool]), "median_rss_mb": median(rss[tool]),
                                 "ratio_to_cutover": median(times[tool]) / cutover, "runs_s": times[tool]}
                          for tool in times},
            }
            if bundled:
                results["sites"][name]["requests"] = count_requests(servers, name, site, nxt)
                results["sites"][name]["storage"] = store_builds(servers, name, builds)
        if not any(name in SITES or name in QUICK for name in sites):
            report(results, "-".join(sites))
            return
        # The whole release runs on moto, whose speed caps the site size: always site A.
        release_site = "quick" if args.quick else "A"
        site, _ = generate(release_site, (QUICK if args.quick else SITES)[release_site], seed=ord("A"))
        release = {"cutover deploy": [], "aws s3 sync + ssm put-parameter": []}
        for run in range(runs):
            env = base_env()
            env.update(AWS_ENDPOINT_URL=servers.moto_url)
            release["cutover deploy"].append(timed(
                [CUTOVER, "deploy", "--bucket", MOTO_BUCKET, "--prefix", f"release{run}", "--version", "1", "--dist-dir", site],
                env)[0])
            script = (f"{VENV}/aws s3 sync {site} s3://{MOTO_BUCKET}/shell{run}/1/ --endpoint-url {servers.moto_url} "
                      f"--only-show-errors && {VENV}/aws ssm put-parameter --name /shell{run}/active --value 1 "
                      f"--type String --overwrite --endpoint-url {servers.moto_url} > /dev/null")
            release["aws s3 sync + ssm put-parameter"].append(timed(["bash", "-c", script], base_env())[0])
            print(f"release run {run + 1}: cutover {release['cutover deploy'][-1]:.2f} s, "
                  f"shell {release['aws s3 sync + ssm put-parameter'][-1]:.2f} s", flush=True)
        results["release"] = {tool: {"median_s": median(v), "runs_s": v} for tool, v in release.items()}
    report(results, "quick" if args.quick else "-".join(sites))


def report(results, label):
    lines = ["| site | files | MB | tool | median s | ratio to cutover | median peak RSS MB |", "|---|---|---|---|---|---|---|"]
    targets = {}
    for name, site in results["sites"].items():
        for tool, r in site["tools"].items():
            lines.append(f"| {name} | {site['files']} | {site['bytes'] / 1e6:.0f} | {tool} | {r['median_s']:.2f} | "
                         f"{r['ratio_to_cutover']:.2f} | {r['median_rss_mb']:.0f} |")
        tools = site["tools"]
        cutover = tools["cutover"]["median_s"]
        redeploy = tools["cutover redeploy"]["median_s"] / cutover
        if "requests" not in site:
            targets[f"{name}: cutover / s5cmd (target <= 0.9)"] = cutover / tools["s5cmd cp"]["median_s"]
            targets[f"{name}: cutover / aws s3 sync (target <= 0.2)"] = cutover / tools["aws s3 sync"]["median_s"]
            targets[f"{name}: next build / full stage (target <= 0.5)"] = redeploy
        targets[f"{name}: cutover peak RSS MB"] = tools["cutover"]["median_rss_mb"]
        if "requests" in site:
            targets[f"{name}: redeploy / full stage (target <= 0.25)"] = redeploy
            targets[f"{name}: cutover redeploy / aws s3 sync redeploy"] = (
                tools["cutover redeploy"]["median_s"] / tools["aws s3 sync redeploy"]["median_s"])
            targets[f"{name}: on the local store in memory, redeploy / full stage"] = (
                tools["cutover redeploy, local store"]["median_s"] / tools["cutover, local store"]["median_s"])
            requests, stored = site["requests"], site["storage"]
            bound = requests["bound"]
            lines += ["", f"| {name}: S3 requests (counting proxy) | total | by method |", "|---|---|---|"]
            for run in ("cutover full stage", "cutover redeploy", "aws s3 sync full stage", "aws s3 sync redeploy"):
                by_method = ", ".join(f"{k} {v}" for k, v in requests[run].items() if k != "total")
                lines.append(f"| {run} | {requests[run]['total']} | {by_method} |")
            held = "holds" if requests["cutover redeploy"]["total"] <= bound else "missed"
            lines.append(f"| bound: changed {requests['changed']} + unhashed {requests['unhashed']} + 5 | {bound} | "
                         f"cutover redeploy {held} |")
            besides = requests["cutover redeploy, besides uploads"]
            lines += ["", f"{name}: the cutover redeploy's {len(besides)} requests besides uploads, in order:", ""]
            lines += [f"- `{request}`" for request in besides]
            lines += ["", f"| {name}: after {stored['builds']} builds, no prune | bytes | per one build |", "|---|---|---|"]
            one = stored["one_build_bytes"]
            for area, size in [*stored["by_area"].items(), ("whole prefix", stored["stored_bytes"]),
                               ("distinct content of the builds (the least any store keeps)",
                                stored["distinct_content_bytes"])]:
                lines.append(f"| {area} | {size:,} | {size / one:.3f} |")
            targets[f"{name}: redeploy S3 requests (target <= {bound})"] = requests["cutover redeploy"]["total"]
            targets[f"{name}: {stored['builds']} builds' bytes / one build (target <= 1.3)"] = stored["stored_bytes"] / one
    release = results["release"]
    if release:
        lines += ["", "| whole release on moto (stage + promote) | median s |", "|---|---|"]
        lines += [f"| {tool} | {r['median_s']:.2f} |" for tool, r in release.items()]
        targets["release: cutover / shell pipeline (target < 1)"] = (
            release["cutover deploy"]["median_s"] / release["aws s3 sync + ssm put-parameter"]["median_s"])
    lines += ["", "| target | measured |", "|---|---|"] + [f"| {k} | {v:.2f} |" for k, v in targets.items()]
    results["targets"] = targets
    text = "\n".join(lines) + "\n"
    (ROOT / "bench" / f"results-{label}.md").write_text(text)
    (ROOT / "bench" / f"results-{label}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
