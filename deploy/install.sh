#!/usr/bin/env bash
# Installs sesame as a hardened systemd service from this checkout: package, system user, directories,
# a first config and server key (if none exist), and the unit. It does not start the service: see the
# printed next steps, which make sure you can still get in before port 22 closes.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it creates a system user, /etc/sesame and a systemd unit)"
command -v nft >/dev/null || die "nftables is missing: apt-get install nftables"
command -v node >/dev/null || die "Node.js 20 or newer is missing"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || die "Node.js 20 or newer is needed (found $(node --version))"

say "== installing the sesame package"
(cd "$repo" && npm ci --no-audit --no-fund && npm install -g --no-audit --no-fund .)
bin="$(command -v sesame)" || die "npm install -g did not put sesame on PATH"

say "== system user and directories"
install -D -m 0644 "$repo/deploy/sysusers.conf" /usr/lib/sysusers.d/sesame.conf
install -D -m 0644 "$repo/deploy/tmpfiles.conf" /usr/lib/tmpfiles.d/sesame.conf
if command -v systemd-sysusers >/dev/null; then
  systemd-sysusers /usr/lib/sysusers.d/sesame.conf
elif ! id sesame >/dev/null 2>&1; then
  useradd --system --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin sesame
fi
if command -v systemd-tmpfiles >/dev/null; then
  systemd-tmpfiles --create /usr/lib/tmpfiles.d/sesame.conf
else
  install -d -m 0750 -o root -g sesame /etc/sesame
  install -d -m 0700 -o sesame -g sesame /var/lib/sesame
fi

if [ ! -e /etc/sesame/config.json ]; then
  say "== first configuration in /etc/sesame"
  "$bin" keygen --server -f /etc/sesame/server.key
  chown sesame:sesame /etc/sesame/server.key && chmod 0600 /etc/sesame/server.key
  chmod 0644 /etc/sesame/server.key.pub && mv /etc/sesame/server.key.pub /etc/sesame/server.pub
  printf '{\n  "users": {}\n}\n' > /etc/sesame/users.json
  sed -e '/"\$schema"/d' "$repo/deploy/config.example.json" > /etc/sesame/config.json
  chown root:sesame /etc/sesame/users.json /etc/sesame/config.json
  chmod 0640 /etc/sesame/users.json /etc/sesame/config.json
else
  say "== keeping the existing /etc/sesame/config.json"
fi

say "== systemd unit"
sed "s#/usr/local/bin/sesame#$bin#g" "$repo/deploy/sesame.service" > /etc/systemd/system/sesame.service
chmod 0644 /etc/systemd/system/sesame.service
if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

cat <<NEXT

Installed. Before you start it, make sure you will still get in (new ssh connections need a knock):
  1. on your laptop:   sesame keygen            (then copy ~/.config/sesame/id_ed25519.pub here)
  2. here:             sesame user add YOU --key id_ed25519.pub
                       sesame server -c /etc/sesame/config.json --check
  3. here:             systemctl enable --now sesame && journalctl -u sesame -f
  4. from the laptop, in a NEW terminal (keep this session open; established connections survive):
                       sesame knock THIS_HOST --server-key server.pub --wait && ssh THIS_HOST
Locked out? From the console: sesame server -c /etc/sesame/config.json --cleanup  (removes the table)
NEXT
