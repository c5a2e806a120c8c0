#!/usr/bin/env bash
# Rebuild the notebook's vendored editor, clients/web/vendor/codemirror.js, and its LICENSES.txt
# from npm: the exact versions of package-lock.json (npm ci), bundled and minified by esbuild
# from codemirror-entry.js. The page loads the result as a plain ES module; nothing is built at
# run time and nothing is fetched from a CDN.
#
# To update a package: change its version in clients/web/vendor/package.json, then
#   (cd clients/web/vendor && npm install --package-lock-only --ignore-scripts)
#   scripts/build-vendor.sh
# and commit package.json, package-lock.json, codemirror.js and LICENSES.txt together.
set -euo pipefail
vendor="$(cd "$(dirname "$0")/../clients/web/vendor" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# node_modules lives in a scratch folder: clients/web is served, and shipped in the wheel, as it is.
cp "$vendor/package.json" "$vendor/package-lock.json" "$vendor/codemirror-entry.js" "$work/"
cd "$work"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
npx --no-install esbuild codemirror-entry.js --bundle --format=esm --minify --target=es2020 \
  --legal-comments=none --metafile=meta.json --outfile=codemirror.js --log-level=warning \
  --banner:js="/* CodeMirror 6 and its dependencies (MIT licence), bundled by scripts/build-vendor.sh: versions in package-lock.json, licences in LICENSES.txt. */"

# The licence of every package that has code in the bundle (esbuild's metafile says which).
node --input-type=module > LICENSES.txt <<'JS'
import { readFileSync, readdirSync } from "node:fs";
const meta = JSON.parse(readFileSync("meta.json", "utf8"));
const names = new Set();
for (const input of Object.keys(meta.inputs)) {
  const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (m) names.add(m[1]);
}
console.log("The packages bundled into codemirror.js, with their licences (from their npm packages).\n");
for (const name of [...names].sort()) {
  const dir = `node_modules/${name}`;
  const pkg = JSON.parse(readFileSync(`${dir}/package.json`, "utf8"));
  const file = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  if (!file) throw new Error(`${name} ships no licence file`);
  console.log(`${"=".repeat(78)}\n${name} ${pkg.version} (${pkg.license})\n${"=".repeat(78)}\n`);
  console.log(readFileSync(`${dir}/${file}`, "utf8").trim() + "\n");
}
JS

cp codemirror.js LICENSES.txt "$vendor/"
echo "clients/web/vendor/codemirror.js: $(wc -c < codemirror.js) bytes ($(gzip -9c codemirror.js | wc -c) gzipped)"
