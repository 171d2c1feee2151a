// Bundle the three widgets (one ES module and one stylesheet each) with esbuild.
// Usage: node scripts/build.mjs <outdir>
import { build } from "esbuild";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const ENTRIES = ["studio", "jobview", "gallery"];

export async function bundle(outdir) {
  await build({
    absWorkingDir: path.resolve(here, ".."),
    entryPoints: ENTRIES.map((name) => `src/${name}.js`),
    outdir,
    bundle: true,
    format: "esm",
    target: "es2020",
    minify: true,
    legalComments: "none",
    logLevel: "warning",
  });
  return ENTRIES.flatMap((name) => [`${name}.js`, `${name}.css`]);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outdir = path.resolve(process.argv[2] || path.join(here, "..", "..", "qvac_nb", "static"));
  const files = await bundle(outdir);
  console.log(`built ${files.join(", ")} into ${outdir}`);
}
