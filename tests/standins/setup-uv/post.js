// setup-uv stand-in, after the job: prune uv's cache for CI (`uv cache prune --ci`: drops the
// wheels that were only downloaded, keeps what uv built) and save it as an archive, unless the
// exact key was restored. As setup-uv does with prune-cache and save-cache left on.
const fs = require("fs");
const path = require("path");
const { execFileSync } = require("child_process");
const { archiveOf, create } = require("./archive");

const key = process.env.STATE_key;
const dir = process.env.STATE_dir;
if (key && process.env.STATE_hit !== "true" && process.env.STATE_save === "true" && fs.existsSync(dir)) {
  if (process.env.STATE_prune === "true") {
    const started = Date.now();
    execFileSync("uv", ["cache", "prune", "--ci"], { stdio: "inherit", env: { ...process.env, UV_CACHE_DIR: dir } });
    console.log(`uv cache pruned in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  }
  if (fs.existsSync(archiveOf(key))) console.log(`Cache entry for key ${key} already exists: not saved`);
  else create(key, path.resolve(dir));
}
