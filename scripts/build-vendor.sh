#!/usr/bin/env bash
# Rebuild the notebook's vendored bundles and their LICENSES.txt from npm: the exact versions of
# package-lock.json (npm ci), bundled and minified by esbuild, one bundle per entry point:
#   codemirror-entry.js -> codemirror.js  (the editor: CodeMirror 6)
#   plot-entry.js       -> plot.js        (the Chart view: Observable Plot and the d3 it uses)
# The page loads them as plain ES modules; nothing is built at run time and nothing is fetched
# from a CDN.
#
# To update a package: change its version in clients/web/vendor/package.json, then
#   (cd clients/web/vendor && npm install --package-lock-only --ignore-scripts)
#   scripts/build-vendor.sh
# and commit package.json, package-lock.json, the bundles and LICENSES.txt together.
set -euo pipefail
vendor="$(cd "$(dirname "$0")/../clients/web/vendor" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# node_modules lives in a scratch folder: clients/web is served, and shipped in the wheel, as it is.
cp "$vendor/package.json" "$vendor/package-lock.json" "$vendor/codemirror-entry.js" "$vendor/plot-entry.js" "$work/"
cd "$work"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

# bundle NAME BANNER: NAME-entry.js -> NAME.js, and NAME.meta.json (what went in, for the licences).
bundle() {
  npx --no-install esbuild "$1-entry.js" --bundle --format=esm --minify --target=es2020 \
    --legal-comments=none --metafile="$1.meta.json" --outfile="$1.js" --log-level=warning --banner:js="$2"
}
bundle codemirror "/* CodeMirror 6 and its dependencies (MIT licence), bundled by scripts/build-vendor.sh: versions in package-lock.json, licences in LICENSES.txt. */"
bundle plot "/* Observable Plot and the d3 modules it uses (ISC licences), bundled by scripts/build-vendor.sh: versions in package-lock.json, licences in LICENSES.txt. */"

# The licence of every package that has code in a bundle (esbuild's metafiles say which).
node --input-type=module > LICENSES.txt <<'JS'
import { readFileSync, readdirSync } from "node:fs";
for (const [i, bundle] of ["codemirror", "plot"].entries()) {
  const meta = JSON.parse(readFileSync(`${bundle}.meta.json`, "utf8"));
  const names = new Set();
  for (const input of Object.keys(meta.inputs)) {
    const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
    if (m) names.add(m[1]);
  }
  console.log(`${i ? "\n" : ""}The packages bundled into ${bundle}.js, with their licences (from their npm packages).\n`);
  for (const name of [...names].sort()) {
    const dir = `node_modules/${name}`;
    const pkg = JSON.parse(readFileSync(`${dir}/package.json`, "utf8"));
    const file = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
    if (!file) throw new Error(`${name} ships no licence file`);
    console.log(`${"=".repeat(78)}\n${name} ${pkg.version} (${pkg.license})\n${"=".repeat(78)}\n`);
    console.log(readFileSync(`${dir}/${file}`, "utf8").trim() + "\n");
  }
}
JS

cp codemirror.js plot.js LICENSES.txt "$vendor/"
for name in codemirror plot; do
  echo "clients/web/vendor/$name.js: $(wc -c < "$name.js") bytes ($(gzip -9c "$name.js" | wc -c) gzipped)"
done
