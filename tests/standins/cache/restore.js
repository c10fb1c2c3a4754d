// Restore the cached folder for this key, if any (stand-in for actions/cache).
const fs = require("fs");
const path = require("path");
const target = process.env["INPUT_PATH"].trim();
const key = process.env["INPUT_KEY"].trim();
const store = path.join(process.env.LOCKSTEP_TEST_CACHE, key.replace(/[^A-Za-z0-9._-]/g, "_"));
const hit = fs.existsSync(store);
if (hit) {
  fs.rmSync(target, { recursive: true, force: true });
  fs.cpSync(store, target, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
}
fs.appendFileSync(process.env.GITHUB_OUTPUT, `cache-hit=${hit}\n`);
fs.appendFileSync(process.env.GITHUB_STATE, `hit=${hit}\nstore=${store}\ntarget=${target}\n`);
console.log(hit ? `cache restored from key: ${key}` : `cache not found for key: ${key}`);
