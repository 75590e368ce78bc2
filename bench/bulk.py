#!/usr/bin/env python3
"""deploy on the two shapes of work that are not config files: many small
files, and one big one, each against its floor, on one plain lab host with
a fresh root home.

- tree: 1,000 small files in 20 directories (a static site or a config
  tree), first deploy and no-op. Floors: a tar of the same files through one
  fresh ssh (first), and one fresh ssh hashing them (no-op).
- big: one 1 GiB file, first deploy. Floor: `ssh host 'cat > f' < file`.
  The deploy process must stream it: its peak RSS is printed and checked.

Medians of --runs runs; wall time, peak RSS of deploy, machine CPU.

    python3 bench/bulk.py [--runs 3] [--scenarios tree,big] [--big-mib 1024]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TREE = "/srv/site"
BIG = "/srv/big.bin"
RSS_LIMIT_MB = 64


def machine_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def timed(cmd, cwd, shell=False, env=None):
    """Wall time, peak RSS (MB) of the process, machine CPU seconds."""
    m0, t0 = machine_cpu(), time.monotonic()
    env = None if env is None else {**os.environ, **env}
    p = subprocess.Popen(cmd, cwd=cwd, shell=shell, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd} failed: {p.stderr.read().decode(errors='replace')[-2000:]}")
    return wall, ru.ru_maxrss / 1024, machine_cpu() - m0


class Host:
    def __init__(self, work):
        self.work = work
        self.ssh = ["ssh", "-F", str(work / ".lab/ssh_config"), "-o", "ControlMaster=no", "-o", "ControlPath=none", "lab1"]

    def sh(self, cmd):
        subprocess.run(self.ssh + [cmd], check=True, stdout=subprocess.DEVNULL)

    def clean(self):
        self.sh("rm -rf /srv/* /tmp/floor* && find /var/lib/deploy -mindepth 1 -delete && sync")


def project(work, files):
    """A deploy project of one role whose files: are `files` (dest, src)."""
    (work / "deploy.yml").write_text("project: bulk\nphases:\n  - name: data\n    roles: [data]\n")
    inv = work / "inventory"
    inv.mkdir(exist_ok=True)
    (inv / "hosts.yml").write_text(
        f"all:\n  children:\n    bulk:\n      vars:\n        deploy_ssh_config: {work}/.lab/ssh_config\n      hosts:\n        lab1:\n"
    )
    role = ["files:"] + [f"  - dest: {dest}\n    src: {src}\n    mode: \"0644\"" for dest, src in files]
    dirs = sorted({os.path.dirname(d) for d, _ in files} - {"/srv"})
    role = ["dirs:"] + [f"  - path: {d}" for d in dirs] + role if dirs else role
    (work / "roles/data").mkdir(parents=True, exist_ok=True)
    (work / "roles/data/role.yml").write_text("\n".join(role) + "\n")


def tree(work, host, args, deploy):
    files = work / "roles/data/files"
    shutil.rmtree(files, ignore_errors=True)
    entries = []
    for d in range(20):
        for i in range(50):
            rel = f"site/d{d:02d}/f{i:03d}.html"
            p = files / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(os.urandom(100 + (d * 50 + i) * 37 % 3900).hex().encode()[: 200 + (i * 97) % 4000])
            entries.append((f"{TREE}/d{d:02d}/f{i:03d}.html", rel))
    project(work, entries)
    first, noop, rss = [], [], 0.0
    for _ in range(args.runs):
        host.clean()
        w, r, m = timed(deploy, work)
        first.append((w, m))
        w, r2, m = timed(deploy, work)
        noop.append((w, m))
        rss = max(rss, r, r2)
    tar = f"tar -C {files} -cf - site | {' '.join(host.ssh)} 'mkdir -p /tmp/floor && tar -xpf - -C /tmp/floor'"
    tar_floor = []
    for _ in range(args.runs):
        host.sh("rm -rf /tmp/floor")
        tar_floor.append(timed(tar, work, shell=True)[0])
    hash_floor = [timed(host.ssh + [f"find {TREE} -type f -print0 | xargs -0 sha256sum >/dev/null"], work)[0] for _ in range(args.runs)]
    med = lambda xs: statistics.median(x[0] for x in xs)  # noqa: E731
    mcpu = lambda xs: statistics.median(x[1] for x in xs)  # noqa: E731
    tf, hf = statistics.median(tar_floor), statistics.median(hash_floor)
    print(f"tree: 1,000 files in 20 directories, one host (medians of {args.runs}); deploy peak RSS {rss:.0f} MB")
    print(f"  first deploy  {med(first):6.2f} s  machine {mcpu(first):5.2f} s  tar floor  {tf:.2f} s  ratio {med(first) / tf:.2f} (target 2)")
    print(f"  no-op         {med(noop):6.2f} s  machine {mcpu(noop):5.2f} s  hash floor {hf:.2f} s  ratio {med(noop) / hf:.2f} (target 1.2)")


def big(work, host, args, deploy):
    files = work / "roles/data/files"
    shutil.rmtree(files, ignore_errors=True)
    files.mkdir(parents=True)
    src = files / "big.bin"
    with open(src, "wb") as f:
        for _ in range(args.big_mib):
            f.write(os.urandom(1 << 20))
    project(work, [(BIG, "big.bin")])
    # each deploy with an empty sum cache (render::sums): the file is new
    # to it, so its one read is the upload's
    runs, floor = [], []
    for i in range(args.runs):
        host.clean()
        cache = work / f".lab/bench-cache-{i}"
        shutil.rmtree(cache, ignore_errors=True)
        runs.append(timed(deploy, work, env={"XDG_CACHE_HOME": str(cache)}))
        host.sh("rm -f /tmp/floor.big && sync")
        floor.append(timed(f"{' '.join(host.ssh)} 'cat > /tmp/floor.big' < {src}", work, shell=True)[0])
    wall, fl = statistics.median(r[0] for r in runs), statistics.median(floor)
    rss = max(r[1] for r in runs)
    print(f"big: one {args.big_mib} MiB file, one host, first deploy (medians of {args.runs}), "
          "its sum not cached")
    print(f"  deploy {wall:6.2f} s  machine {statistics.median(r[2] for r in runs):5.2f} s  "
          f"cat floor {fl:.2f} s  ratio {wall / fl:.2f} (target 1.3)  peak RSS {rss:.0f} MB (limit {RSS_LIMIT_MB})")
    if rss >= RSS_LIMIT_MB:
        sys.exit(f"deploy held {rss:.0f} MB: the big file was not streamed")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scenarios", default="tree,big")
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--instance", type=int, default=243)
    ap.add_argument("--deploy-bin", default=str(REPO / "target/release/deploy"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (the lab is network namespaces)")
    work = Path(tempfile.mkdtemp(prefix="deploy-bench-bulk-"))
    lab = ["bash", str(REPO / "tests/lab/lab.sh")]
    subprocess.run(lab + ["up", "--dir", ".lab", "--instance", str(args.instance), "--hosts", "1"],
                   cwd=work, check=True, stdout=subprocess.DEVNULL)
    try:
        host = Host(work)
        deploy = [args.deploy_bin, "bulk", "--yes"]
        print(f"{time.strftime('%Y-%m-%d')}; machine: {os.cpu_count()} cores, {os.uname().release}; lab host with a fresh root home")
        for sc in args.scenarios.split(","):
            {"tree": tree, "big": big}[sc](work, host, args, deploy)
    finally:
        subprocess.run(lab + ["down", "--dir", ".lab"], cwd=work, stdout=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
