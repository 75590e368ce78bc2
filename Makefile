# deploy: common tasks. Run as root on a Debian machine (the lab uses network
# namespaces); tests/lab/lab.sh installs the apt packages it needs.
DEPLOY := target/release/deploy
HOSTS ?= 3
SYSTEMD_HOSTS ?= 2
ROLE ?=

.PHONY: build demo test lint bench lab-up lab-down deploy-lab check-lab deploy-role man

build:
	cargo build --release

# Build, bring up the lab, deploy the example (plan + apply), then deploy
# again to show that nothing changes.
demo: build lab-up
	$(DEPLOY) lab --yes
	@echo
	@echo "== second run: nothing to change, nothing touched"
	$(DEPLOY) lab --yes

# Every test, the lab tests included (each test brings up its own lab hosts).
test:
	cargo fmt --all -- --check
	cargo clippy --all-targets --quiet -- -D warnings
	cargo nextest run --no-fail-fast

# deploy(1), from the same definitions as --help (the tests check it renders)
man: build
	$(DEPLOY) man > target/deploy.1
	@echo "man -l target/deploy.1"

lint:
	cargo clippy --all-targets -- -D warnings

# deploy against Ansible (default, and pipelining) and pyinfra on a 5-host lab:
# medians of 3 runs per scenario, every file verified after every run.
# BENCH_ARGS="--hosts 50 --tools deploy --scenarios noop" for the scale run.
# Then the no-op on a systemd host with every resource kind (bench/systemd.py),
# and 1,000 small files and one 1 GiB file against their floors (bench/bulk.py).
bench: build
	python3 bench/bench.py $(BENCH_ARGS)
	python3 bench/systemd.py
	python3 bench/bulk.py

# lab1..lab3 each run their own Docker engine (lab3 has only Compose v1);
# sys1..sys2 boot systemd under systemd-nspawn
lab-up:
	bash tests/lab/lab.sh up --dir .lab --hosts $(HOSTS) --docker --compose-v1 lab3 --systemd-hosts $(SYSTEMD_HOSTS)

lab-down:
	bash tests/lab/lab.sh down --dir .lab

deploy-lab: build
	$(DEPLOY) lab

check-lab: build
	$(DEPLOY) lab --check

deploy-role: build
	$(DEPLOY) lab --role $(ROLE)
