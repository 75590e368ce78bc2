#!/usr/bin/env python3
"""deploy's no-op on a host that boots systemd, with every kind of host
resource present (the example's `system` role: packages, units, users,
groups, sysctl, cron, lines, a guarded command), against its floor.

The floor is one fresh ssh connection running, by hand, what the probe must
ask anyway: `systemctl show` of the units, `apt-cache policy` of the
packages, `getent` of the accounts, the sysctl value, and sha256sum of the
managed files. The run also counts the commands deploy sends (it must stay
one: the probe) and its peak RSS.

    python3 bench/systemd.py [--runs 5]
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
SYSTEM_ONLY = """project: example-stack
age_identity: inventory/lab.identity
phases:
  - name: base
    roles: [common]
  - name: system
    roles: [system]
    hosts: lab_systemd
"""
FLOOR = (
    "systemctl show -p LoadState,ActiveState,UnitFileState,MainPID,NRestarts lab-web.service lab-worker.service >/dev/null; "
    "apt-cache policy busybox lab-tool >/dev/null; getent passwd web ops >/dev/null; getent group www >/dev/null; "
    "cat /proc/sys/net/ipv4/tcp_keepalive_time >/dev/null; "
    "sha256sum /etc/systemd/system/lab-*.service /etc/default/lab-* /etc/lab-web/httpd.conf /srv/www/index.html "
    "/etc/cron.d/deploy-system /etc/sysctl.d/60-deploy-system.conf /etc/login.defs /etc/motd >/dev/null"
)


def run(argv, cwd, env=None):
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed: {p.stderr.read().decode(errors='replace')[-2000:]}")
    return wall, ru.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--instance", type=int, default=241)
    ap.add_argument("--deploy-bin", default=str(REPO / "target/release/deploy"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="deploy-bench-systemd-"))
    for d in ["roles", "inventory"]:
        shutil.copytree(REPO / d, work / d)
    (work / "deploy.yml").write_text(SYSTEM_ONLY)
    inv = (work / "inventory/hosts.yml").read_text().splitlines()
    keep = [l for l in inv if l.strip().rstrip(":") not in ("lab1", "lab2", "lab3", "sys2")]
    (work / "inventory/hosts.yml").write_text("\n".join(keep) + "\n")
    lab = ["bash", str(REPO / "tests/lab/lab.sh")]
    subprocess.run(lab + ["up", "--dir", ".lab", "--instance", str(args.instance), "--hosts", "0", "--systemd-hosts", "1"],
                   cwd=work, check=True, stdout=subprocess.DEVNULL)
    try:
        env = dict(os.environ, NO_COLOR="1")
        run([args.deploy_bin, "lab", "--yes"], work, env)
        cap = work / "capture"
        cap.mkdir()
        walls, rss = [], 0.0
        for _ in range(args.runs):
            for f in cap.iterdir():
                f.unlink()
            w, r = run([args.deploy_bin, "lab", "--yes"], work, dict(env, DEPLOY_CAPTURE_DIR=str(cap)))
            walls.append(w)
            rss = max(rss, r)
            commands = sorted(f.name for f in cap.iterdir())
        ssh = ["ssh", "-F", str(work / ".lab/ssh_config"), "-o", "ControlMaster=no", "-o", "ControlPath=none", "sys1"]
        floor = statistics.median(run(ssh + [FLOOR], work)[0] for _ in range(args.runs))
        wall = statistics.median(walls)
        print(f"systemd host, every resource kind present, no-op (median of {args.runs}):")
        print(f"  deploy {wall:.2f} s   floor {floor:.2f} s   ratio {wall / floor:.2f}x   "
              f"peak RSS {rss:.0f} MB   commands per host: {len(commands)} ({', '.join(commands)})")
        if len(commands) != 1:
            sys.exit("a no-op must be one command per host (the probe)")
    finally:
        subprocess.run(lab + ["down", "--dir", ".lab"], cwd=work, stdout=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
