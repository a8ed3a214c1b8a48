#!/usr/bin/env bash
# Installs sesame on this Debian or Ubuntu host from this checkout, the way a released package installs: builds the
# .deb (scripts/package.sh), installs it with apt (a copy in /usr/lib/sesame and /usr/bin/sesame, the sesame user,
# /etc/sesame, /var/lib/sesame, the unit), then writes a first setup with "sesame server init /etc/sesame" if there is
# none. Nothing installed points back into this checkout. It does not start the service: see the printed next steps,
# which make sure you can still get in before port 22 closes. Run it again to upgrade; /etc/sesame is kept.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs a package)"
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || die "needs a Debian or Ubuntu host (apt-get, dpkg-deb); see README, Install"
command -v node >/dev/null || die "Node.js 20 or newer is missing"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || die "Node.js 20 or newer is needed (found $(node --version))"

say "== building the package"
(cd "$repo" && npm ci --no-audit --no-fund && sh scripts/package.sh)
debs=("$repo"/dist/sesame_*.deb)
[ "${#debs[@]}" = 1 ] && [ -f "${debs[0]}" ] || die "expected one package in $repo/dist, found: ${debs[*]}"

say "== installing ${debs[0]}"
DEBIAN_FRONTEND=noninteractive apt-get install -y "${debs[0]}"

if [ ! -e /etc/sesame/config.json ]; then
  say "== first setup in /etc/sesame"
  sesame server init /etc/sesame
else
  say "== keeping the existing /etc/sesame"
  if [ -d /run/systemd/system ] && systemctl is-active --quiet sesame; then say "the daemon still runs the old version: systemctl restart sesame"; fi
fi

cat <<NEXT

Installed, not started. Before you start it, make sure you will still get in (new ssh connections need a knock):
  1. on your laptop:   sesame keygen            (then copy ~/.config/sesame/id_ed25519.pub here)
  2. here:             sesame user add YOU --key id_ed25519.pub
  3. here:             systemctl enable --now sesame && journalctl -u sesame -f   (it checks the setup first)
  4. from the laptop, in a NEW terminal (keep this session open; established connections survive):
                       sesame knock THIS_HOST --server-key server.pub --wait && ssh THIS_HOST
     (server.pub is /etc/sesame/server.pub)
Locked out? From the console: sesame server -c /etc/sesame/config.json --cleanup  (removes the table)
NEXT
