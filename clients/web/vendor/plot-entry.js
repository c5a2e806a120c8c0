// What the notebook's Chart view uses of Observable Plot (and so of d3): the entry point
// scripts/build-vendor.sh bundles (with esbuild) into plot.js. The page imports plot.js only
// when a Chart view opens. Add an export here, rebuild, and commit both files.

export { areaY, barY, dot, lineY, plot, ruleY, scale } from "@observablehq/plot";
