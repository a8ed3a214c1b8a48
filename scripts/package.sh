#!/bin/sh
# Builds the Debian package (npm run package): dist/sesame_VERSION_ARCH.deb, or in OUTDIR if given. It holds the program
# compiled from src/ with its production dependencies (npm ci --omit=dev, from the lock file) in /usr/lib/sesame,
# /usr/bin/sesame, the systemd unit, sysusers and tmpfiles entries and deploy/debian's maintainer scripts. Everything is
# built in a temporary directory: this checkout's dist/ and node_modules/ are not touched. Needs the dev dependencies
# (npm ci), dpkg-deb, and the npm registry or its cache. ARCH is "all" unless the optional pcap binding (cap, native)
# was built and loads with this host's Node.js: then it is included and ARCH is this host's architecture.
# Usage: scripts/package.sh [OUTDIR]
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo/dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)
die() { printf 'package.sh: %s\n' "$*" >&2; exit 1; }

command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (apt-get install dpkg)"
[ -x "$repo/node_modules/.bin/tsc" ] || die "TypeScript is missing: run npm ci in $repo first"
# The package runs on the system's Node.js (/usr/bin/node, package nodejs); check the build with the same one.
node=/usr/bin/node
[ -x "$node" ] || node=$(command -v node) || die "Node.js is missing"

work=$(mktemp -d "${TMPDIR:-/tmp}/sesame-package.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
root="$work/root"
lib="$root/usr/lib/sesame"
nm="$lib/node_modules"
mkdir -p "$lib" "$root/DEBIAN"

version=$("$node" -p 'require(process.argv[1]).version' "$repo/package.json")
debversion=$(printf '%s' "$version" | tr '-' '~') # a semver pre-release sorts before its release, as ~ does in dpkg

echo "== compiling src/ into /usr/lib/sesame/dist"
cat >"$work/tsconfig.json" <<EOF
{
  "extends": "$repo/tsconfig.json",
  "compilerOptions": { "rootDir": "$repo", "outDir": "$lib/dist", "typeRoots": ["$repo/node_modules/@types"] },
  "include": ["$repo/src/**/*.ts"]
}
EOF
"$repo/node_modules/.bin/tsc" -p "$work/tsconfig.json"
mkdir -p "$lib/src"
cp -r "$repo/src/schema" "$lib/src/schema"

echo "== production dependencies (npm ci --omit=dev)"
# The lock file as it is, and package.json without its scripts (prepare would need TypeScript).
"$node" -e '
  const [from, to] = process.argv.slice(1);
  const p = JSON.parse(require("fs").readFileSync(from, "utf8"));
  delete p.scripts;
  require("fs").writeFileSync(to, JSON.stringify(p, null, 2) + "\n");
' "$repo/package.json" "$lib/package.json"
cp "$repo/package-lock.json" "$lib/package-lock.json"
(cd "$lib" && npm ci --omit=dev --no-audit --no-fund --loglevel=error >"$work/npm.log" 2>&1) || { cat "$work/npm.log" >&2; die "npm ci --omit=dev failed"; }

# Only what runs: no build-time or optional native helpers (msgpackr works without msgpackr-extract, ssh2 without
# cpu-features and its own crypto binding: sesame uses only its key parser and generator), no docs, types,
# sources or tests of the dependencies.
rm -rf "$lib/package-lock.json" "$nm/.package-lock.json" "$nm/.bin" "$nm/nan" "$nm/msgpackr-extract" "$nm/@msgpackr-extract" \
  "$nm/node-gyp-build-optional-packages" "$nm/detect-libc" "$nm/cpu-features" "$nm/buildcheck" "$nm/ssh2/lib/protocol/crypto/src" "$nm/ssh2/lib/protocol/crypto/build" \
  "$nm/ssh2/install.js"
# Nested .bin directories hold npm's command shims (symbolic links, e.g. grpc-js's proto-loader-gen-types): sesame runs none.
find "$nm" -depth -type d -name .bin -exec rm -rf {} +
find "$nm" -type f \( -name '*.md' -o -name '*.markdown' -o -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.map' \
  -o -name '.npmignore' -o -name '.eslintrc*' -o -name '.prettierrc*' -o -name '.editorconfig' -o -name 'tsconfig*.json' \
  -o -name '*.yml' -o -name '*.yaml' -o -name '*.gyp' -o -name '*.gypi' \) -delete
find "$nm" -depth -type d \( -name test -o -name tests -o -name __tests__ -o -name docs -o -name doc -o -name example \
  -o -name examples -o -name benchmarks -o -name bench -o -name .github \) -exec rm -rf {} +

arch=all
pcap="left out (pcap mode says what to install)"
if [ -d "$nm/cap" ]; then
  if "$node" -e 'require(process.argv[1])' "$nm/cap" 2>/dev/null; then
    # Keep the loader and the addon itself, not its sources and build tree.
    find "$nm/cap" -mindepth 1 -maxdepth 1 ! -name lib ! -name build ! -name package.json ! -name LICENSE -exec rm -rf {} +
    find "$nm/cap/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
    find "$nm/cap/build/Release" -mindepth 1 -maxdepth 1 ! -name cap.node -exec rm -rf {} +
    arch=$(dpkg --print-architecture)
    pcap="included, built for Node.js $("$node" --version) (NODE_MODULE_VERSION $("$node" -p process.versions.modules))"
  else
    rm -rf "$nm/cap"
  fi
fi
find "$nm" -depth -type d -empty -delete

# The installed package.json: what cli.js reads (version) and what makes dist/ ES modules.
"$node" -e '
  const [from, to] = process.argv.slice(1);
  const p = JSON.parse(require("fs").readFileSync(from, "utf8"));
  const keep = { name: p.name, version: p.version, description: p.description, license: p.license, type: p.type,
    engines: p.engines, dependencies: p.dependencies, optionalDependencies: p.optionalDependencies };
  require("fs").writeFileSync(to, JSON.stringify(keep, null, 2) + "\n");
' "$repo/package.json" "$lib/package.json"

echo "== smoke test: every module loads, keygen and a knock work"
"$node" --input-type=module -e '
  import { readdirSync } from "node:fs";
  import { join } from "node:path";
  const walk = (d) => readdirSync(d, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]);
  for (const f of walk(process.argv[1]).filter((f) => f.endsWith(".js") && !f.endsWith("/src/cli.js"))) await import(f);
' "$lib/dist/src"
smoke="$work/smoke"
mkdir -p "$smoke"
"$node" "$lib/dist/src/cli.js" --version >/dev/null
"$node" "$lib/dist/src/cli.js" keygen -f "$smoke/user" -C smoke -N "" >/dev/null
"$node" "$lib/dist/src/cli.js" keygen --server -f "$smoke/server" -C smoke >/dev/null
XDG_CONFIG_HOME="$smoke" "$node" "$lib/dist/src/cli.js" knock 192.0.2.1 -i "$smoke/user" --server-key "$smoke/server.pub" --print-packet >/dev/null

echo "== package tree"
install -D -m 0755 "$repo/deploy/debian/sesame.sh" "$root/usr/bin/sesame"
install -D -m 0644 "$repo/deploy/sesame.service" "$root/lib/systemd/system/sesame.service"
install -D -m 0644 "$repo/deploy/sysusers.conf" "$root/usr/lib/sysusers.d/sesame.conf"
install -D -m 0644 "$repo/deploy/tmpfiles.conf" "$root/usr/lib/tmpfiles.d/sesame.conf"
doc="$root/usr/share/doc/sesame"
mkdir -p "$doc/examples"
gzip -9n <"$repo/README.md" >"$doc/README.md.gz"
for f in config.example.json users.example.json; do
  sed 's#"\$schema": "\.\./src/schema/#"$schema": "/usr/lib/sesame/src/schema/#' "$repo/deploy/$f" >"$doc/examples/$f"
done
cat >"$doc/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: sesame
Comment: The Node.js modules in /usr/lib/sesame/node_modules carry their own licence files.

Files: *
License: MIT
EOF
for f in postinst prerm postrm; do install -m 0755 "$repo/deploy/debian/$f" "$root/DEBIAN/$f"; done
chmod -R u=rwX,go=rX "$root/usr" "$root/lib"
chmod 0755 "$root/usr/bin/sesame"

recommends=""
[ "$arch" = all ] || recommends="Recommends: libpcap0.8
"
cat >"$root/DEBIAN/control" <<EOF
Package: sesame
Version: $debversion
Architecture: $arch
Maintainer: sesame maintainers <root@localhost>
Installed-Size: $(du -sk "$root/usr" "$root/lib" | awk '{ s += $1 } END { print s }')
Depends: nodejs (>= 20), nftables
${recommends}Section: net
Priority: optional
Description: single-packet authorization: one signed UDP knock opens a port
 A user sends one UDP packet, encrypted to the server's key and signed with
 the user's Ed25519 key, and sesame opens a port (usually ssh) in nftables for
 that source address only, for a limited time; the kernel closes it on time
 even if the daemon dies. The daemon never answers a packet and runs as the
 sesame user with CAP_NET_ADMIN only.
 .
 The unit sesame.service is installed but neither enabled nor started: first
 run "sesame server init /etc/sesame" and add a user.
EOF
(cd "$root" && find usr lib -type f -exec md5sum {} + | sort -k 2) >"$root/DEBIAN/md5sums"

rm -f "$out"/sesame_*.deb
deb="$out/sesame_${debversion}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "built $deb: $(du -k "$deb" | cut -f1) KiB, $(du -sk "$root/usr" "$root/lib" | awk '{ s += $1 } END { print s }') KiB installed"
echo "pcap binding (cap): $pcap"
