#!/usr/bin/env bash
# Install Compose v2 (Debian trixie's docker-compose package: a static Go
# binary) as the docker CLI plugin, without switching the machine to trixie:
# a temporary sources list, `apt-get download`, `dpkg -x`. Idempotent.
set -euo pipefail
dest=/usr/libexec/docker/cli-plugins/docker-compose
if [ -x "$dest" ] && "$dest" version 2>/dev/null | grep -Eq 'version v?2\.'; then exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" >"$tmp/sources.list"
opts=(-o Dir::Etc::SourceList="$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o Dir::State::Lists="$tmp/lists" -o Dir::Cache="$tmp/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
apt-get "${opts[@]}" update -qq
(cd "$tmp" && apt-get "${opts[@]}" download docker-compose >/dev/null)
dpkg -x "$tmp"/docker-compose_*.deb "$tmp/x"
bin=$(find "$tmp/x" -path '*cli-plugins/docker-compose' -type f | head -1)
[ -n "$bin" ] || { echo "compose-v2: no cli plugin in the package" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
install -m 0755 "$bin" "$dest.tmp.$$" && mv -f "$dest.tmp.$$" "$dest"
"$dest" version
