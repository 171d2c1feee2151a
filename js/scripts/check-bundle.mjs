// Fail if the checked-in bundle (qvac_nb/static) is not what the sources build to.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { bundle } from "./build.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const checkedIn = path.resolve(here, "..", "..", "qvac_nb", "static");
const tmp = await mkdtemp(path.join(os.tmpdir(), "qvac-bundle-"));
try {
  const stale = [];
  for (const name of await bundle(tmp)) {
    const fresh = await readFile(path.join(tmp, name));
    const current = await readFile(path.join(checkedIn, name)).catch(() => null);
    if (!current || !fresh.equals(current)) stale.push(name);
  }
  if (stale.length) {
    console.error(`qvac_nb/static is stale: ${stale.join(", ")} differ from a fresh build; run \`npm run build\` in js/`);
    process.exitCode = 1;
  } else {
    console.log("qvac_nb/static matches a fresh build");
  }
} finally {
  await rm(tmp, { recursive: true, force: true });
}
