// `npm run build`: bundle src/main.js with esbuild and write index.html,
// app.js and style.css into ../src/exportd/web_dist/ (served by exportd at /).
// `npm run build:dev` keeps it readable and adds a source map.

import { copyFile, mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "exportd", "web_dist");
const dev = process.argv.includes("--dev");

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });

await esbuild.build({
  entryPoints: [join(here, "src", "main.js")],
  outfile: join(out, "app.js"),
  bundle: true,
  format: "iife",
  platform: "browser",
  target: ["es2022"],
  minify: !dev,
  sourcemap: dev ? "linked" : false,
  legalComments: "none",
  logLevel: "warning",
});
await copyFile(join(here, "src", "index.html"), join(out, "index.html"));
await copyFile(join(here, "src", "style.css"), join(out, "style.css"));
console.log(`web UI built into ${out}${dev ? " (dev)" : ""}`);
