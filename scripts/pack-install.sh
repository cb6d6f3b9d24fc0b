#!/usr/bin/env bash
# Packs every publishable package (pnpm pack, as `pnpm publish` would) and installs the CLI from the
# tarballs with npm into an empty prefix, on a PATH that holds node, npm and sh only: no cc, gcc, g++,
# make or python, as on a machine without build tools. The gateway is not installed, so nothing native
# may be needed. Then runs the installed `tracemark` on a small text: --version, keygen, detect, and
# `serve`, which must name the package to install.
#
#   scripts/pack-install.sh [PREFIX]   PREFIX: install there and keep it (default: a temporary folder)
#
# Needs the packages built (`pnpm build`). Third-party dependencies come from npm's cache, else from the
# registry (--prefer-offline); TRACEMARK_PACK_OFFLINE=1 allows the cache only (--offline).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The CLI and the workspace packages it depends on, directly or not (read from the package.json files);
# the gateway is packed too (it must pack) but not installed.
mapfile -t CLI_PACKAGES < <(node -e '
  const { readdirSync, readFileSync, existsSync } = require("node:fs");
  const root = process.argv[1];
  const directories = new Map();
  for (const parent of ["packages", "apps"])
    for (const name of readdirSync(`${root}/${parent}`)) {
      const file = `${root}/${parent}/${name}/package.json`;
      if (existsSync(file)) directories.set(JSON.parse(readFileSync(file, "utf8")).name, `${parent}/${name}`);
    }
  const needed = new Set();
  const visit = (name) => {
    if (needed.has(name)) return;
    needed.add(name);
    const manifest = JSON.parse(readFileSync(`${root}/${directories.get(name)}/package.json`, "utf8"));
    for (const dependency of Object.keys(manifest.dependencies ?? {}))
      if (directories.has(dependency)) visit(dependency);
  };
  visit("@tracemark/cli");
  for (const name of needed) console.log(directories.get(name));
' "$ROOT")
ALL_PACKAGES=("${CLI_PACKAGES[@]}" apps/gateway)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tracemark-pack-install.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
PREFIX="${1:-$WORK/prefix}"
mkdir -p "$PREFIX"

step() { printf '== %s\n' "$*"; }
fail() {
  printf 'pack-install: %s\n' "$*" >&2
  exit 1
}

for dir in "${ALL_PACKAGES[@]}"; do
  [[ -d "$ROOT/$dir/dist" ]] || fail "$dir/dist is missing: run pnpm build first"
done

step "pnpm pack (${#ALL_PACKAGES[@]} packages)"
mkdir -p "$WORK/tarballs"
for dir in "${ALL_PACKAGES[@]}"; do
  (cd "$ROOT/$dir" && pnpm pack --pack-destination "$WORK/tarballs" >/dev/null)
done
for tarball in "$WORK"/tarballs/*.tgz; do
  listing="$(tar -tzf "$tarball")"
  # A published package carries no tests, and no workspace: ranges (pnpm pack rewrites them).
  if grep -E '\.test\.(ts|js)$|\.test-helper\.|test-support/' <<<"$listing" >/dev/null; then
    fail "$(basename "$tarball") contains test files"
  fi
  for file in package/package.json package/CHANGELOG.md; do
    grep -qx "$file" <<<"$listing" || fail "$(basename "$tarball") lacks $file"
  done
  grep -q '^package/dist/.*\.js$' <<<"$listing" || fail "$(basename "$tarball") has no dist/*.js"
  if tar -xzOf "$tarball" package/package.json | grep -F '"workspace:' >/dev/null; then
    fail "$(basename "$tarball") still has workspace: ranges"
  fi
done

tarball_of() {
  local name
  name="$(node -p "require('$ROOT/$1/package.json').name.replace('@', '').replace('/', '-') + '-' + require('$ROOT/$1/package.json').version")"
  printf '%s/tarballs/%s.tgz' "$WORK" "$name"
}
INSTALL=()
for dir in "${CLI_PACKAGES[@]}"; do INSTALL+=("$(tarball_of "$dir")"); done

# A PATH without build tools: node, npm and a shell only.
BIN="$WORK/bin"
mkdir -p "$BIN"
ln -s "$(readlink -f "$(command -v node)")" "$BIN/node"
ln -s "$(readlink -f "$(command -v npm)")" "$BIN/npm"
ln -s "$(readlink -f "$(command -v sh)")" "$BIN/sh"
for tool in cc gcc g++ c++ clang make python3 python; do
  if PATH="$BIN" command -v "$tool" >/dev/null 2>&1; then fail "$tool is reachable on the restricted PATH"; fi
done

step "npm install the CLI into $PREFIX (PATH: node, npm, sh)"
OFFLINE_FLAG=--prefer-offline
[[ "${TRACEMARK_PACK_OFFLINE:-}" == 1 ]] && OFFLINE_FLAG=--offline
(cd "$WORK" && PATH="$BIN" npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
  "$OFFLINE_FLAG" "${INSTALL[@]}")

for native in better-sqlite3 pg ioredis fastify @tracemark/gateway; do
  [[ ! -e "$PREFIX/node_modules/$native" ]] || fail "installing the CLI brought $native"
done
if find "$PREFIX/node_modules" -name binding.gyp | grep . >/dev/null; then
  fail "a dependency of the CLI has native code (binding.gyp)"
fi

TRACEMARK="$PREFIX/node_modules/.bin/tracemark"
run() { PATH="$BIN" "$TRACEMARK" "$@"; }

step "tracemark --version"
version="$(run --version)"
expected="$(node -p "require('$ROOT/apps/cli/package.json').version")"
[[ "$version" == "$expected" ]] || fail "--version printed '$version', expected '$expected'"

step "tracemark keygen, then detect on a small text"
run keygen --out "$WORK/key.json" >/dev/null
printf 'The committee met on Tuesday to review the budget, and agreed to meet again next week.\n' >"$WORK/sample.txt"
run detect --key "$WORK/key.json" --json "$WORK/sample.txt" >"$WORK/detect.json"
node -e '
  const out = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
  if (out.summary.documents !== 1 || out.summary.errors !== 0 || out.results[0].numTokens < 10)
    throw new Error("unexpected detect output: " + JSON.stringify(out));
' "$WORK/detect.json"

step "tracemark serve without the gateway names the package"
set +e
serve_error="$(run serve --port 0 2>&1 >/dev/null)"
serve_code=$?
set -e
[[ $serve_code -eq 3 && "$serve_error" == *"@tracemark/gateway"* ]] ||
  fail "serve without the gateway: exit $serve_code, $serve_error"

step "ok: the CLI installs from its tarballs without build tools and without the gateway"
