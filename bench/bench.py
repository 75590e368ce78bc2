#!/usr/bin/env python3
"""Side-by-side benchmark: `deploy` against Ansible (default settings, and with
pipelining) and pyinfra, on the lab, with the same templates and the same
per-host variables, verifying after every run that every file on every host is
byte for byte (and mode for mode) what Jinja2 with Ansible's template settings
renders.

    python3 bench/bench.py                 # 5 hosts, 3 runs per scenario, all tools
    python3 bench/bench.py --smoke --hosts 2 --scenarios first   # correctness only (the test suite)
    python3 bench/bench.py --tools deploy --hosts 50 --scenarios noop   # scale

Scenarios: (a) first deploy to clean hosts, (b) no-op re-deploy, (c) one
variable changed that changes exactly one file per host. Measured per run:
wall time, SSH connections and sessions opened on the hosts (sshd's own log,
LogLevel VERBOSE), the controller's CPU time and the whole machine's, and the
peak RSS of the controller's process tree. Medians are printed.

Runs as root (the lab is network namespaces). Creates bench/.venv with
ansible-core and pyinfra from PyPI on first use.
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / "bench" / ".venv"
# pinned so that a figure in README can be reproduced
PEERS = ["ansible-core==2.19.14", "pyinfra==3.10.0"]
# the collections the import test's playbook uses, from the `ansible`
# package that goes with ansible-core 2.19
COLLECTIONS = REPO / "bench" / ".collections"
PASSLIB = "passlib==1.7.4"
COLLECTIONS_WHEEL = "ansible==12.3.0"
COLLECTION_NAMES = ["community.docker", "ansible.posix"]
BASE = "/opt/app/conf"
DIRS = [("core", "0755"), ("net", "0755"), ("svc", "0755"), ("data", "0755"), ("env", "0700")]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


# --------------------------------------------------------------------------
# the workload: 5 directories, 50 templates, per-host variables


def small_template(d, i):
    """A config file of 20 to 60 lines using variables, a loop and conditionals.
    Block tags end in `-%}` so that trim_blocks (Ansible: on, pyinfra: off)
    cannot make the tools differ."""
    n_items = 6 + (i * 7) % 20
    lines = [
        f"# {d}/conf{i:02d}.conf for {{{{ host_name }}}} (site {{{{ site }}}})",
        f"[{d}.{i}]",
        "name = {{ host_name }}-" + f"{d}{i}",
        f"port = {{{{ base_port + {i} }}}}",
        "workers = {{ workers }}",
        "log_level = {{ log_level }}",
        "region = {{ region | upper }}",
        "{% if tls -%}",
        "tls = on",
        f"tls_cert = /etc/ssl/{{{{ host_name }}}}-{d}{i}.pem",
        "{% else -%}",
        "tls = off",
        "{% endif -%}",
        "{% for u in upstreams -%}",
        f"upstream.{{{{ loop.index }}}} = {{{{ u }}}}:{{{{ base_port + {i} }}}}",
        "{% endfor -%}",
    ]
    for k in range(n_items):
        lines.append(f"opt_{k} = {{{{ seed * {k + 1} + {i} }}}}")
    lines += [
        "{% for f in features -%}",
        "{% if f != 'debug' -%}",
        f"feature.{{{{ f }}}} = enabled",
        "{% endif -%}",
        "{% endfor -%}",
    ]
    if d == "core" and i == 7:
        # the one file scenario (c) changes
        lines.append("revision = {{ bench_rev }}")
    return "\n".join(lines) + "\n"


def env_template(i):
    lines = [f"# env {i} for {{{{ host_name }}}}"]
    for k in range(18):
        lines.append(f"APP{i}_VAR_{k}={{{{ host_name | upper }}}}_{k}_{{{{ seed + {k} }}}}")
    lines.append(f"APP{i}_TOKEN={{{{ token }}}}{i}")
    lines.append("{% if tls -%}")
    lines.append(f"APP{i}_SCHEME=https")
    lines.append("{% else -%}")
    lines.append(f"APP{i}_SCHEME=http")
    lines.append("{% endif -%}")
    return "\n".join(lines) + "\n"


def big_template(i):
    lines = [f"# table {i} for {{{{ host_name }}}}: about 500 lines"]
    lines.append("{% for r in range(rows) -%}")
    lines.append(f"row {{{{ r }}}} {i} {{{{ host_name }}}} {{{{ (r * seed + {i}) % 9973 }}}} {{{{ region }}}}")
    lines.append("{% endfor -%}")
    lines.append("# end")
    return "\n".join(lines) + "\n"


def workload():
    """[(template name, dest, mode, source)]"""
    files = []
    for d in ["core", "net", "svc", "data"]:
        for i in range(10):
            files.append((f"{d}_conf{i:02d}.j2", f"{BASE}/{d}/conf{i:02d}.conf", "0644", small_template(d, i)))
    for i in range(5):
        files.append((f"env_app{i}.j2", f"{BASE}/env/app{i}.env", "0600", env_template(i)))
    for i in range(5):
        files.append((f"data_table{i}.j2", f"{BASE}/data/table{i}.txt", "0644", big_template(i)))
    assert len(files) == 50
    return files


def host_vars(host, k, rev):
    return {
        "host_name": host,
        "site": f"site-{k % 3}",
        "base_port": 8000 + 100 * k,
        "workers": 2 + k,
        "log_level": ["info", "debug", "warn"][k % 3],
        "region": ["eu-west", "us-east", "ap-south"][k % 3],
        "tls": k % 2 == 0,
        "upstreams": [f"10.9.{k}.{j}" for j in range(1, 3 + k % 4)],
        "seed": 17 + 13 * k,
        "features": ["search", "export", "debug", "sharing"][: 2 + k % 3],
        "token": hashlib.sha256(f"token-{host}".encode()).hexdigest()[:24],
        "rows": 496,
        "bench_rev": rev,
    }


def yaml_dump(d):
    # JSON is YAML: every tool reads these files, none needs a YAML writer here
    return json.dumps(d, indent=1) + "\n"


# --------------------------------------------------------------------------
# the three tools' projects, all reading the same templates and vars files


class Work:
    def __init__(self, root, hosts, instance):
        self.root = root
        self.hosts = [f"lab{i}" for i in range(1, hosts + 1)]
        self.instance = instance
        self.lab = root / ".lab"
        self.templates = root / "templates"
        self.vars = root / "vars"
        self.files = workload()
        self.rev = 1

    def addr(self, h):
        return (self.lab / "hosts" / h / "addr").read_text().strip()

    def write_vars(self):
        self.vars.mkdir(parents=True, exist_ok=True)
        for k, h in enumerate(self.hosts):
            (self.vars / f"{h}.yml").write_text(yaml_dump(host_vars(h, k, self.rev)))

    def generate(self):
        if self.templates.exists():
            shutil.rmtree(self.templates)
        self.templates.mkdir(parents=True)
        for name, _, _, src in self.files:
            (self.templates / name).write_text(src)
        self.write_vars()
        self.gen_deploy()
        self.gen_ansible()
        self.gen_pyinfra()

    def gen_deploy(self):
        d = self.root / "deploy"
        if d.exists():
            shutil.rmtree(d)
        (d / "roles/bench").mkdir(parents=True)
        (d / "inventory/host_vars").mkdir(parents=True)
        (d / "deploy.yml").write_text("project: bench\nphases:\n  - name: conf\n    roles: [bench]\n")
        inv = ["all:", "  children:", "    bench:", "      vars:", f"        deploy_ssh_config: {self.lab}/ssh_config", "      hosts:"]
        inv += [f"        {h}:" for h in self.hosts]
        (d / "inventory/hosts.yml").write_text("\n".join(inv) + "\n")
        for h in self.hosts:
            (d / "inventory/host_vars" / f"{h}.yml").symlink_to(self.vars / f"{h}.yml")
        (d / "roles/bench/templates").symlink_to(self.templates)
        role = ["dirs:", f"  - path: /opt/app", '    mode: "0755"', f"  - path: {BASE}", '    mode: "0755"']
        for name, mode in DIRS:
            role += [f"  - path: {BASE}/{name}", f'    mode: "{mode}"']
        role.append("files:")
        for name, dest, mode, _ in self.files:
            role += [f"  - dest: {dest}", f"    template: {name}", f'    mode: "{mode}"']
            if mode == "0600":
                role.append("    secret: true")
        (d / "roles/bench/role.yml").write_text("\n".join(role) + "\n")

    def gen_ansible(self):
        d = self.root / "ansible"
        if d.exists():
            shutil.rmtree(d)
        (d / "host_vars").mkdir(parents=True)
        inv = ["all:", "  children:", "    bench:", "      hosts:"] + [f"        {h}:" for h in self.hosts]
        inv += [
            "  vars:",
            f"    ansible_ssh_common_args: \"-F {self.lab}/ssh_config\"",
            "    ansible_python_interpreter: /usr/bin/python3",
        ]
        (d / "inventory.yml").write_text("\n".join(inv) + "\n")
        for h in self.hosts:
            (d / "host_vars" / f"{h}.yml").symlink_to(self.vars / f"{h}.yml")
        (d / "templates").symlink_to(self.templates)
        dirs = [{"path": "/opt/app", "mode": "0755"}, {"path": BASE, "mode": "0755"}]
        dirs += [{"path": f"{BASE}/{n}", "mode": m} for n, m in DIRS]
        files = [{"src": n, "dest": dest, "mode": mode} for n, dest, mode, _ in self.files]
        play = [
            {
                "hosts": "bench",
                # no facts: the workload needs none, and it spares Ansible a round trip
                "gather_facts": False,
                "tasks": [
                    {
                        "name": "directories",
                        "ansible.builtin.file": {"path": "{{ item.path }}", "state": "directory", "mode": "{{ item.mode }}"},
                        "loop": dirs,
                    },
                    {
                        "name": "files",
                        "ansible.builtin.template": {
                            "src": "templates/{{ item.src }}",
                            "dest": "{{ item.dest }}",
                            "mode": "{{ item.mode }}",
                        },
                        "loop": files,
                        "no_log": False,
                    },
                ],
            }
        ]
        (d / "playbook.yml").write_text(json.dumps(play, indent=1) + "\n")

    def gen_pyinfra(self):
        d = self.root / "pyinfra"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        (d / "templates").symlink_to(self.templates)
        hosts = []
        for h in self.hosts:
            hosts.append(
                (
                    h,
                    {
                        "ssh_hostname": self.addr(h),
                        "ssh_user": "root",
                        "ssh_key": str(self.lab / "id_ed25519"),
                        "ssh_known_hosts_file": str(self.lab / "known_hosts"),
                        "ssh_strict_host_key_checking": "yes",
                        "ssh_allow_agent": False,
                        "ssh_look_for_keys": False,
                        "bench_vars_file": str(self.vars / f"{h}.yml"),
                    },
                )
            )
        (d / "inventory.py").write_text(f"bench = {hosts!r}\n")
        dirs = [("/opt/app", "755"), (BASE, "755")] + [(f"{BASE}/{n}", m.lstrip("0")) for n, m in DIRS]
        files = [(n, dest, mode.lstrip("0")) for n, dest, mode, _ in self.files]
        (d / "deploy.py").write_text(
            f"""import json
from pyinfra import host
from pyinfra.operations import files

V = json.load(open(host.data.bench_vars_file))
for path, mode in {dirs!r}:
    files.directory(name="dir " + path, path=path, mode=mode)
for src, dest, mode in {files!r}:
    files.template(name="file " + dest, src="templates/" + src, dest=dest, mode=mode,
                   jinja_env_kwargs={{"trim_blocks": True}}, **V)
"""
        )

    # ---------------------------------------------------------------- truth

    def expected(self):
        """{host: {path: (mode, sha256)}} as Jinja2 renders it with Ansible's
        template settings (trim_blocks, trailing newline kept, strict)."""
        code = r"""
import hashlib, json, sys
import jinja2
tdir, vdir, files, hosts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
env = jinja2.Environment(loader=jinja2.FileSystemLoader(tdir), trim_blocks=True,
                         keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
out = {}
for h in hosts:
    v = json.load(open(f"{vdir}/{h}.yml"))
    out[h] = {dest: [mode, hashlib.sha256(env.get_template(n).render(**v).encode()).hexdigest()]
              for n, dest, mode in files}
print(json.dumps(out))
"""
        files = [(n, dest, mode) for n, dest, mode, _ in self.files]
        r = sh([str(VENV / "bin/python"), "-c", code, str(self.templates), str(self.vars), json.dumps(files), json.dumps(self.hosts)])
        want = json.loads(r.stdout)
        for h in self.hosts:
            want[h].update({f"{BASE}/{n}": [m, "dir"] for n, m in DIRS})
        return want

    def render_local(self, out):
        """The files each host should end with, rendered by Jinja2 into
        out/HOST/..., for the tar floor."""
        code = r"""
import json, os, sys
import jinja2
tdir, vdir, files, hosts, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5]
env = jinja2.Environment(loader=jinja2.FileSystemLoader(tdir), trim_blocks=True,
                         keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
for h in hosts:
    v = json.load(open(f"{vdir}/{h}.yml"))
    for n, dest, mode in files:
        p = f"{out}/{h}{dest}"
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(env.get_template(n).render(**v))
        os.chmod(p, int(mode, 8))
"""
        files = [(n, dest, mode) for n, dest, mode, _ in self.files]
        shutil.rmtree(out, ignore_errors=True)
        sh([str(VENV / "bin/python"), "-c", code, str(self.templates), str(self.vars), json.dumps(files), json.dumps(self.hosts), str(out)])

    def verify(self, tool):
        want = self.expected()
        bad = []
        for h in self.hosts:
            r = subprocess.run(
                ssh_cmd(self, h)
                + [f"cd / && find {BASE} -mindepth 1 -printf '%y %m %p\\n' | while read t m p; do if [ $t = f ]; then echo \"$m $p $(sha256sum < $p | cut -d' ' -f1)\"; else echo \"$m $p dir\"; fi; done"],
                text=True,
                capture_output=True,
            )
            got = {}
            for line in r.stdout.splitlines():
                m, p, s = line.split(" ", 2)
                got[p] = [m.zfill(4), s]
            for p, (mode, sha) in want[h].items():
                if p not in got:
                    bad.append(f"{h}: {p} missing")
                elif got[p] != [mode, sha]:
                    bad.append(f"{h}: {p} is {got[p][0]} {got[p][1][:12]}, want {mode} {sha[:12]}")
            for p in got:
                if p not in want[h]:
                    bad.append(f"{h}: {p} not expected")
        if bad:
            raise SystemExit(f"{tool}: files on the hosts are not what they should be:\n  " + "\n  ".join(bad[:20]))


def ssh_cmd(w, h, *extra):
    return ["ssh", "-F", str(w.lab / "ssh_config"), "-o", "ControlMaster=no", "-o", "ControlPath=none", *extra, h]


# --------------------------------------------------------------------------
# measuring


def machine_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def tree_rss(root):
    """Sum of RSS (bytes) of `root` and its descendants."""
    kids, rss = {}, {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
            fields = st[st.rfind(")") + 2 :].split()
            kids.setdefault(int(fields[1]), []).append(int(p))
            rss[int(p)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            pass
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(kids.get(p, []))
    return total


def sshd_counts(w):
    conns = sessions = 0
    for h in w.hosts:
        for line in (w.lab / "hosts" / h / "sshd.log").read_text(errors="replace").splitlines():
            if "Connection from " in line:
                conns += 1
            elif "Starting session:" in line:
                sessions += 1
    return conns, sessions


def measure(w, argv, cwd, env=None):
    c0, s0 = sshd_counts(w)
    m0 = machine_cpu()
    t0 = time.monotonic()
    out = open(w.root / "last-run.log", "w")
    p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss(p.pid))
            stop.wait(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    stop.set()
    th.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    m1 = machine_cpu()
    # sshd writes its log lines as it accepts; give the last ones a moment to land
    time.sleep(0.2)
    c1, s1 = sshd_counts(w)
    out.close()
    if p.returncode != 0:
        tail = (w.root / "last-run.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"{argv[0]} failed (exit {p.returncode}):\n{tail}")
    return {
        "wall": wall,
        "conns": c1 - c0,
        "sessions": s1 - s0,
        "cpu": ru.ru_utime + ru.ru_stime,
        "machine_cpu": m1 - m0,
        "rss_mb": peak[0] / 1e6,
    }


def tools(w, deploy_bin, wanted):
    base = dict(os.environ, NO_COLOR="1", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PYTHONWARNINGS="ignore")
    out = {}

    def ansible(pipelining):
        def run():
            # a fresh ControlPath dir per run: every tool starts without open connections
            cp = tempfile.mkdtemp(prefix="ansible-cp-", dir=w.root)
            env = dict(base, ANSIBLE_PIPELINING="1" if pipelining else "0", ANSIBLE_SSH_CONTROL_PATH_DIR=cp)
            env["ANSIBLE_LOCAL_TEMP"] = str(w.root / "ansible-tmp")
            return [str(VENV / "bin/ansible-playbook"), "-i", "inventory.yml", "playbook.yml"], w.root / "ansible", env

        return run

    if "deploy" in wanted:
        out["deploy"] = lambda: ([deploy_bin, "bench", "--yes"], w.root / "deploy", base)
    if "ansible" in wanted:
        out["ansible"] = ansible(False)
    if "ansible-pipelining" in wanted:
        out["ansible-pipelining"] = ansible(True)
    if "pyinfra" in wanted:
        out["pyinfra"] = lambda: ([str(VENV / "bin/pyinfra"), "-y", "inventory.py", "deploy.py"], w.root / "pyinfra", base)
    return out


def clean_hosts(w):
    procs = [subprocess.Popen(ssh_cmd(w, h) + ["rm -rf /opt/app && find /var/lib/deploy -mindepth 1 -delete"]) for h in w.hosts]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit("could not clean the hosts")


def floors(w, runs):
    def par(cmd):
        t0 = time.monotonic()
        procs = [subprocess.Popen(ssh_cmd(w, h) + [cmd], stdout=subprocess.DEVNULL) for h in w.hosts]
        for p in procs:
            p.wait()
        return time.monotonic() - t0

    a = statistics.median(par("true") for _ in range(runs))
    b = statistics.median(par(f"sha256sum {BASE}/*/* >/dev/null") for _ in range(runs))
    # the first deploy's floor: every host's files as one tar through one
    # fresh ssh per host, unpacked with their modes
    local = w.root / "floor"
    w.render_local(local)

    def tar_all(k):
        t0 = time.monotonic()
        procs = [
            subprocess.Popen(
                f"tar -C {local / h} -cf - opt | {' '.join(ssh_cmd(w, h))} 'mkdir -p /tmp/floor{k} && tar -xpf - -C /tmp/floor{k}'",
                shell=True,
            )
            for h in w.hosts
        ]
        for p in procs:
            p.wait()
        return time.monotonic() - t0

    c = statistics.median(tar_all(k) for k in range(runs))
    par("rm -rf /tmp/floor*")
    return a, b, c


# --------------------------------------------------------------------------


def ensure_venv():
    if not ((VENV / "bin/ansible-playbook").exists() and (VENV / "bin/pyinfra").exists()):
        log(f"bench: creating {VENV} with {' '.join(PEERS)} from PyPI")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin/pip"), "install", "-q", *PEERS], check=True)
    # passlib: ansible-core's password_hash filter needs it (the render corpus)
    if subprocess.run([str(VENV / "bin/python"), "-c", "import passlib"], capture_output=True).returncode:
        subprocess.run([str(VENV / "bin/pip"), "install", "-q", PASSLIB], check=True)
    ensure_collections()


def ensure_collections():
    """community.docker and ansible.posix, which the import test's playbook
    uses, taken from the `ansible` package's wheel on PyPI (this machine
    reaches PyPI, not Galaxy); only those two are unpacked."""
    import zipfile

    if (COLLECTIONS / "ansible_collections/community/docker/MANIFEST.json").exists():
        return
    log(f"bench: unpacking {', '.join(COLLECTION_NAMES)} from {COLLECTIONS_WHEEL} into {COLLECTIONS}")
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(
            [str(VENV / "bin/pip"), "download", "-q", "--no-deps", COLLECTIONS_WHEEL, "-d", d], check=True
        )
        (whl,) = Path(d).glob("*.whl")
        prefixes = tuple(f"ansible_collections/{n.replace('.', '/')}/" for n in COLLECTION_NAMES)
        tmp = COLLECTIONS.with_name(COLLECTIONS.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        with zipfile.ZipFile(whl) as z:
            z.extractall(tmp, members=[m for m in z.namelist() if m.startswith(prefixes)])
        shutil.rmtree(COLLECTIONS, ignore_errors=True)
        tmp.rename(COLLECTIONS)


def versions():
    a = sh([str(VENV / "bin/ansible-playbook"), "--version"]).stdout.splitlines()[0]
    p = sh([str(VENV / "bin/pyinfra"), "--version"]).stdout.strip()
    return a, p


def lab(w, action, hosts=None):
    cmd = ["bash", str(REPO / "tests/lab/lab.sh"), action, "--dir", str(w.lab)]
    if action == "up":
        cmd += ["--instance", str(w.instance), "--hosts", str(hosts)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def fmt_row(cols, widths):
    return "  ".join(str(c).rjust(n) if i else str(c).ljust(n) for i, (c, n) in enumerate(zip(cols, widths)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tools", default="deploy,ansible,ansible-pipelining,pyinfra")
    ap.add_argument("--scenarios", default="first,noop,change")
    ap.add_argument("--instance", type=int, default=240, help="lab instance (subnet 10.231.K.0/24)")
    ap.add_argument("--dir", default=str(REPO / "bench/.work"))
    ap.add_argument("--deploy-bin", default=str(REPO / "target/release/deploy"), type=lambda p: str(Path(p).resolve()))
    ap.add_argument("--smoke", action="store_true", help="one run each, correctness only, no table")
    ap.add_argument("--keep-lab", action="store_true")
    ap.add_argument("--setup", action="store_true", help="only create bench/.venv (ansible-core, pyinfra) and bench/.collections")
    ap.add_argument(
        "--merge",
        action="append",
        default=[],
        metavar="RESULTS.json",
        help="add the tools of an earlier run (its saved results file) to the table, marked as such",
    )
    args = ap.parse_args()
    if args.setup:
        ensure_venv()
        return
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (the lab is network namespaces)")
    if not Path(args.deploy_bin).exists():
        raise SystemExit(f"bench: no deploy binary at {args.deploy_bin} (cargo build --release)")
    ensure_venv()
    root = Path(args.dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    w = Work(root, args.hosts, args.instance)
    if w.lab.exists():
        lab(w, "down")
    log(f"bench: lab of {args.hosts} hosts (instance {args.instance})")
    lab(w, "up", args.hosts)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        w.generate()
        run_all(w, args)
    finally:
        if not args.keep_lab:
            lab(w, "down")


TOOLS = ["deploy", "ansible", "ansible-pipelining", "pyinfra"]


def save_results(w, args, runs, results, floor, peers):
    """Every full run leaves its raw figures behind, so that a slow peer measured
    once (Ansible: about 45 minutes for 3 runs of 3 scenarios) can be shown
    beside a later deploy run with --merge."""
    stamp = time.strftime("%Y-%m-%dT%H%M%S")
    out = w.root / f"results-{stamp}.json"
    data = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "hosts": len(w.hosts),
        "runs": runs,
        "peers": list(peers),
        "machine": f"{os.cpu_count()} cores, {os.uname().release}",
        "floor": {"conn": floor[0], "hash": floor[1], "tar": floor[2]},
        "results": {f"{n}|{sc}": rs for (n, sc), rs in results.items()},
    }
    out.write_text(json.dumps(data, indent=1) + "\n")
    log(f"bench: raw figures in {out}")


def load_merged(files, wanted, scenarios, hosts):
    merged = {}
    for f in files:
        data = json.loads(Path(f).read_text())
        if data["hosts"] != hosts:
            raise SystemExit(f"bench: {f} was measured on {data['hosts']} hosts, this run has {hosts}")
        for key, rs in data["results"].items():
            name, sc = key.split("|")
            # what this run measures itself always wins
            if name not in wanted and sc in scenarios:
                merged[(name, sc)] = (rs, data["when"])
    return merged


def run_all(w, args):
    runs = 1 if args.smoke else args.runs
    wanted = args.tools.split(",")
    scenarios = args.scenarios.split(",")
    results = {}
    makers = tools(w, args.deploy_bin, wanted)
    unknown = [t for t in wanted if t not in makers]
    if unknown:
        raise SystemExit(f"bench: unknown tools {unknown}; known: deploy, ansible, ansible-pipelining, pyinfra")
    merged = load_merged(args.merge, wanted, scenarios, len(w.hosts))
    for name in wanted:
        make = makers[name]
        for n_sc, sc in enumerate(scenarios):
            if n_sc == 0 and sc != "first":
                # a no-op or one-file change starts from hosts in sync: bring
                # them there untimed, or run 1 would measure a first deploy
                argv, cwd, env = make()
                measure(w, argv, cwd, env)
                w.verify(f"{name} (bringing the hosts in sync before {sc})")
            for k in range(runs):
                if sc == "first":
                    clean_hosts(w)
                elif sc == "change":
                    w.rev += 1
                    w.write_vars()
                argv, cwd, env = make()
                r = measure(w, argv, cwd, env)
                w.verify(f"{name} ({sc}, run {k + 1})")
                results.setdefault((name, sc), []).append(r)
                log(f"bench: {name:19} {sc:6} run {k + 1}: {r['wall']:7.2f}s  {r['conns']:4} conns  {r['sessions']:5} sessions")
    if args.smoke:
        print(f"smoke: {', '.join(wanted)} x {', '.join(scenarios)} on {len(w.hosts)} hosts: every file verified")
        return
    floor_conn, floor_hash, floor_tar = floors(w, max(runs, 3))
    a, p = versions()
    save_results(w, args, runs, results, (floor_conn, floor_hash, floor_tar), (a, p))
    for (name, sc), (rs, when) in merged.items():
        results[(name, sc)] = rs
    earlier = sorted({(name, when) for (name, _), (_, when) in merged.items()})
    wanted = [t for t in TOOLS if t in wanted or any(n == t for n, _ in earlier)]
    print(f"\n{len(w.hosts)} hosts, 50 files + 7 directories each; medians of {runs} runs; {time.strftime('%Y-%m-%d')}")
    print(f"peers: {a}; {p}; machine: {os.cpu_count()} cores, {os.uname().release}")
    for name, when in earlier:
        print(f"{name}: from the earlier run of {when} (same machine and lab; --merge)")
    print()
    widths = [19, 7, 9, 8, 6, 9, 8, 11, 8]
    print(fmt_row(["tool", "scen.", "wall s", "x deploy", "conns", "sessions", "cpu s", "machine s", "rss MB"], widths))
    for sc in scenarios:
        ref = statistics.median(r["wall"] for r in results.get(("deploy", sc), [{"wall": float("nan")}]))
        for name in wanted:
            rs = results.get((name, sc))
            if not rs:
                continue
            med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
            print(
                fmt_row(
                    [
                        name,
                        sc,
                        f"{med('wall'):.2f}",
                        f"{med('wall') / ref:.1f}",
                        f"{med('conns'):.0f}",
                        f"{med('sessions'):.0f}",
                        f"{med('cpu'):.2f}",
                        f"{med('machine_cpu'):.2f}",
                        f"{med('rss_mb'):.0f}",
                    ],
                    widths,
                )
            )
    print(f"\nfloor: fresh `ssh HOST true` to every host in parallel: {floor_conn:.2f}s;"
          f" one ssh per host hashing its 50 files: {floor_hash:.2f}s;"
          f" one ssh per host unpacking a tar of its files: {floor_tar:.2f}s")
    if ("deploy", "first") in results:
        first = statistics.median(r["wall"] for r in results[("deploy", "first")])
        print(f"deploy first deploy / tar floor: {first / floor_tar:.2f} (target 1.5)")
    if ("deploy", "noop") in results:
        noop = statistics.median(r["wall"] for r in results[("deploy", "noop")])
        print(f"deploy no-op / hashing floor: {noop / floor_hash:.2f} (target 1.5)")
    if ("deploy", "change") in results:
        ch = statistics.median(r["wall"] for r in results[("deploy", "change")])
        print(f"deploy one-file change / hashing floor: {ch / floor_hash:.2f} (target 2)")


if __name__ == "__main__":
    main()
