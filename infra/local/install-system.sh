#!/usr/bin/env bash
# Debian packages the local stack needs (Debian 12). Idempotent: installs only what is missing and runs
# `apt-get update` only when something is. Uses sudo only when not root.
#   infra/local/install-system.sh            # install what is missing
#   infra/local/install-system.sh --check    # list what is missing, exit 1 if anything is
set -euo pipefail

# Append later needs here (nginx libnginx-mod-rtmp ffmpeg chromium ...).
PACKAGES="redis-server kcat postgresql-15 maven wrk nginx libnginx-mod-rtmp ffmpeg fonts-dejavu-core chromium prometheus"  # wrk: bench/api.py; nginx + RTMP module, ffmpeg: ingest; fonts: the demo clock; chromium: e2e tests; prometheus (and promtool): `make up OBSERVE=1`, the alert-rule tests
# Only when no java is on PATH: any JDK/JRE 17+ runs Kafka 4.x.
JAVA_PACKAGE="openjdk-17-jre-headless"
# Only when no npm is on PATH (it installs hls.js for the web pages): a Node.js from elsewhere (e.g.
# NodeSource, whose nodejs package conflicts with Debian's npm) is just as good.
NPM_PACKAGE="npm"

missing=()
for package in $PACKAGES; do
  # dpkg -s succeeds for removed-but-configured packages too; require the "install ok installed" state.
  if [[ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" != "install ok installed" ]]; then
    missing+=("$package")
  fi
done
if ! command -v java >/dev/null 2>&1; then
  missing+=("$JAVA_PACKAGE")
fi
if ! command -v npm >/dev/null 2>&1; then
  missing+=("$NPM_PACKAGE")
fi

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "system packages: all present ($PACKAGES, java, npm)"
  exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
  echo "missing: ${missing[*]}"
  exit 1
fi

as_root=()
if [[ "$(id -u)" -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "not root and no sudo: install ${missing[*]} as root" >&2; exit 1; }
  as_root=(sudo)
fi
echo "installing: ${missing[*]}"
"${as_root[@]}" apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian starts the packaged services on install; the platform runs its own instances from run_dir on
# the same default ports (6379, 5432, 9090), so stop and disable the system ones when systemd manages them.
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
  [[ " ${missing[*]} " == *" redis-server "* ]] && "${as_root[@]}" systemctl disable --now redis-server || true
  [[ " ${missing[*]} " == *" postgresql-15 "* ]] && "${as_root[@]}" systemctl disable --now postgresql || true
  [[ " ${missing[*]} " == *" prometheus "* ]] && "${as_root[@]}" systemctl disable --now prometheus || true
elif [[ " ${missing[*]} " == *" prometheus "* && -x /etc/init.d/prometheus ]]; then
  # Without systemd, Debian's postinst starts /etc/init.d/prometheus when a SysV runlevel links it (as
  # user prometheus, on :9090): the local stack runs its own from run_dir, so stop and unlink that one.
  "${as_root[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  "${as_root[@]}" update-rc.d prometheus disable >/dev/null 2>&1 || true
fi
