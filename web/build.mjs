// Bundles src/main.ts and its CSS (xterm's included) into ../src/jobcast/web/static/ with
// content-hashed names, and writes index.html naming them: the server may then cache the
// assets for ever, and only index.html is revalidated.
import { build } from "esbuild";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "jobcast", "web", "static");

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const result = await build({
  entryPoints: { app: join(here, "src", "main.ts") },
  bundle: true,
  minify: true,
  sourcemap: false,
  format: "esm",
  target: "es2022",
  outdir: out,
  entryNames: "[name]-[hash]",
  metafile: true,
  legalComments: "none",
  logLevel: "warning",
});
const names = Object.keys(result.metafile.outputs).map((p) => basename(p));
const js = names.find((n) => n.endsWith(".js"));
const css = names.find((n) => n.endsWith(".css"));
if (!js || !css) throw new Error(`esbuild made ${names.join(", ")}: expected a .js and a .css`);
const page = readFileSync(join(here, "index.html"), "utf8")
  .replace("{{app.js}}", `/assets/${js}`)
  .replace("{{app.css}}", `/assets/${css}`);
writeFileSync(join(out, "index.html"), page);
console.log(`web: built ${js}, ${css}`);
