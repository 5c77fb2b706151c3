// Bundles the two pages, src/main.ts (the UI, with xterm's CSS) and src/docs/main.ts (/docs,
// Swagger UI), into ../src/jobcast/web/static/ with content-hashed names, and writes index.html
// and docs.html naming them: the server may then cache the assets for ever, and only the pages
// are revalidated.
import { build } from "esbuild";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "jobcast", "web", "static");
// entry name -> [its source, the page that names its .js and .css]
const PAGES = {
  app: ["src/main.ts", "index.html"],
  docs: ["src/docs/main.ts", "docs.html"],
};

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const result = await build({
  entryPoints: Object.fromEntries(Object.entries(PAGES).map(([name, [src]]) => [name, join(here, src)])),
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
const outputs = Object.entries(result.metafile.outputs);
for (const [name, [src, page]] of Object.entries(PAGES)) {
  const entry = outputs.find(([, o]) => o.entryPoint && relative(here, o.entryPoint) === src);
  const js = entry && basename(entry[0]);
  const css = entry?.[1].cssBundle && basename(entry[1].cssBundle);
  if (!js || !css) throw new Error(`esbuild made no .js and .css for ${src}`);
  const html = readFileSync(join(here, page), "utf8")
    .replace(`{{${name}.js}}`, `/assets/${js}`)
    .replace(`{{${name}.css}}`, `/assets/${css}`);
  writeFileSync(join(out, page), html);
  console.log(`web: ${page} with ${js}, ${css}`);
}
