#!/usr/bin/env python3
"""cutover's benchmark: staging a site against the tools teams use today, side by side in one run.

Generates reproducible sites (fixed seed) and their "next build", starts a local S3 (s3s-fs) and
moto (SSM, and the whole-release comparison), then runs each tool in turn, alternating the order,
each to a fresh bucket; measures wall time and peak RSS with /usr/bin/time, checks that every
object arrived with its size, and writes the medians and ratios to cutover as Markdown and JSON
(bench/results-<sites>.md and .json).
Run it through bench/run, which installs the tools.

Why a bucket per run, not only a prefix: s3s-fs answers every LIST by walking its whole bucket
directory, where S3 reads an index by prefix. cutover, `aws s3 sync` and rclone each list their
target, so in one shared bucket every run listed everything the runs before it had written and the
listing tools got slower run by run.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
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


class Servers:
    """s3s-fs for the stage comparison, moto for SSM and the whole-release comparison."""

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
        # Moto answers its first calls slowly; warm it up so no tool pays for it.
        aws(["s3api", "create-bucket", "--bucket", MOTO_BUCKET], self.moto_url)
        aws(["ssm", "put-parameter", "--name", "/bench/warm-up", "--value", "1", "--type", "String", "--overwrite"],
            self.moto_url)
        return self

    def bucket(self, name):
        """A new, empty bucket on s3s-fs (a directory of its data root)."""
        (self.data / name).mkdir()
        return name

    def __exit__(self, *_):
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


def stage_command(tool, site, bucket, version, servers):
    """The command and env that put `site` under `<PREFIX>/<version>/` in `bucket` with `tool`."""
    env = base_env()
    target = f"s3://{bucket}/{PREFIX}/{version}/"
    if tool == "cutover":
        env.update(AWS_ENDPOINT_URL_S3=servers.s3_url, AWS_ENDPOINT_URL_SSM=servers.moto_url,
                   CUTOVER_POINTER=f"ssm:/bench/{bucket}")
        return [CUTOVER, "stage", "--bucket", bucket, "--prefix", PREFIX, "--version", version, "--dist-dir", site], env
    if tool == "aws s3 sync":
        return [VENV / "aws", "s3", "sync", site, target, "--endpoint-url", servers.s3_url, "--only-show-errors"], env
    if tool == "s5cmd cp":
        return [VENV / "s5cmd", "--endpoint-url", servers.s3_url, "cp", f"{site}/*", target], env
    if tool == "rclone copy":
        env.pop("AWS_CA_BUNDLE", None)
        env.update(RCLONE_CONFIG_BENCH_TYPE="s3", RCLONE_CONFIG_BENCH_PROVIDER="Other",
                   RCLONE_CONFIG_BENCH_ENDPOINT=servers.s3_url, RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=KEYS["AWS_ACCESS_KEY_ID"],
                   RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=KEYS["AWS_SECRET_ACCESS_KEY"],
                   RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true")
        return ["rclone", "copy", site, f"bench:{bucket}/{PREFIX}/{version}", "--transfers", "16"], env
    raise ValueError(tool)


def verify(servers, site, bucket, version):
    """Every file of the site is stored under the version with its size (s3s-fs keeps plain files)."""
    stored = servers.data / bucket / PREFIX / version
    for path in site.rglob("*"):
        if path.is_file():
            copy = stored / path.relative_to(site)
            if not copy.is_file() or copy.stat().st_size != path.stat().st_size:
                sys.exit(f"{copy} is missing or has the wrong size")


def median(values):
    return statistics.median(values) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", default="A,B,C", help="which sites to stage (A, B, C)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each tool per site")
    parser.add_argument("--quick", action="store_true", help="a tiny site A, one run: keeps the benchmark working")
    args = parser.parse_args()
    # Stopped with SIGTERM, still stop the servers (the `with` below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    WORK.mkdir(parents=True, exist_ok=True)
    sites = QUICK if args.quick else {name: SITES[name] for name in args.sites.split(",")}
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
            site, nxt = generate(name, spec, seed=ord(name[0]))
            times = {tool: [] for tool in tools + ["cutover redeploy"]}
            rss = {tool: [] for tool in times}
            for run in range(runs):
                order = tools[run % len(tools):] + tools[:run % len(tools)]
                for tool in order:
                    bucket = servers.bucket(f"{name}-{tool.split()[0]}-{run}".lower())
                    command, env = stage_command(tool, site, bucket, "1", servers)
                    wall, peak = timed(command, env)
                    verify(servers, site, bucket, "1")
                    times[tool].append(wall)
                    rss[tool].append(peak)
                    print(f"{name} run {run + 1}: {tool:<12} {wall:7.2f} s {peak:7.1f} MB", flush=True)
                # The next build, staged with the first one live: only what changed should cost.
                bucket = f"{name}-cutover-{run}".lower()
                aws(["ssm", "put-parameter", "--name", f"/bench/{bucket}", "--value", "1", "--type", "String",
                     "--overwrite"], servers.moto_url)
                command, env = stage_command("cutover", nxt, bucket, "2", servers)
                wall, peak = timed(command, env)
                verify(servers, nxt, bucket, "2")
                times["cutover redeploy"].append(wall)
                rss["cutover redeploy"].append(peak)
                print(f"{name} run {run + 1}: next build  {wall:7.2f} s {peak:7.1f} MB", flush=True)
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
        targets[f"{name}: cutover / s5cmd (target <= 0.9)"] = cutover / tools["s5cmd cp"]["median_s"]
        targets[f"{name}: cutover / aws s3 sync (target <= 0.2)"] = cutover / tools["aws s3 sync"]["median_s"]
        targets[f"{name}: next build / full stage (target <= 0.5)"] = tools["cutover redeploy"]["median_s"] / cutover
        targets[f"{name}: cutover peak RSS MB"] = tools["cutover"]["median_rss_mb"]
    release = results["release"]
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
