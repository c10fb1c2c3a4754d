// The stand-ins' cache store, in tests/standins/cache/ and tests/standins/setup-uv/ alike: act
// copies each stand-in folder on its own, so each holds this file (tests/test_actrunner.py keeps them identical).
// Shared by restore.js and save.js: the cache store is $LOCKSTEP_TEST_CACHE, one archive per key,
// made and read the way actions/cache does it: tar of the paths, compressed with zstd when the
// `zstd` binary exists (actions/cache: `zstd -T0 --long=30`), else gzip. Restoring extracts the
// archive, saving creates it, so a cache costs what its size costs, as on GitHub.
const fs = require("fs");
const path = require("path");
const os = require("os");
const { execFileSync } = require("child_process");

function hasZstd() {
  try {
    execFileSync("zstd", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const ZSTD = hasZstd();
const EXT = ZSTD ? ".tar.zst" : ".tar.gz";

function store() {
  const dir = process.env.LOCKSTEP_TEST_CACHE;
  if (!dir) throw new Error("LOCKSTEP_TEST_CACHE is not set: the cache stand-in has no store");
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

function archiveOf(key) {
  return path.join(store(), key.replace(/[^A-Za-z0-9._-]/g, "_") + EXT);
}

// The archive for `key`, else the newest one whose key starts with one of `prefixes` (restore-keys).
function find(key, prefixes) {
  const exact = archiveOf(key);
  if (fs.existsSync(exact)) return { file: exact, key, exact: true };
  const entries = fs.readdirSync(store()).filter((name) => name.endsWith(EXT));
  for (const prefix of prefixes) {
    const safe = prefix.replace(/[^A-Za-z0-9._-]/g, "_");
    const matches = entries
      .filter((name) => name.startsWith(safe))
      .map((name) => ({ name, mtime: fs.statSync(path.join(store(), name)).mtimeMs }))
      .sort((a, b) => b.mtime - a.mtime);
    if (matches.length) {
      return { file: path.join(store(), matches[0].name), key: matches[0].name.slice(0, -EXT.length), exact: false };
    }
  }
  return null;
}

// The `path` input: one path per line, `~` expanded, relative ones against the workspace.
function paths(input) {
  return input
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("!"))
    .map((line) => (line.startsWith("~") ? path.join(os.homedir(), line.slice(1)) : line));
}

function compressor(extract) {
  if (ZSTD) return extract ? "zstd -d --long=30" : "zstd -T0 --long=30";
  return extract ? "gzip -d" : "gzip";
}

function mb(file) {
  return (fs.statSync(file).size / 1024 / 1024).toFixed(1);
}

function create(key, input) {
  const cwd = process.env.GITHUB_WORKSPACE || process.cwd();
  // as actions/cache: members relative to the workspace (`../_temp/x` for the runner's temp
  // folder), so the archive restores where the next job's workspace and temp folder are
  const present = paths(input)
    .filter((p) => fs.existsSync(path.resolve(cwd, p)))
    .map((p) => path.relative(cwd, path.resolve(cwd, p)) || ".");
  if (!present.length) {
    console.log(`cache not saved: none of the paths exists (${input.trim()})`);
    return;
  }
  const file = archiveOf(key);
  const partial = `${file}.${process.pid}.partial`;
  const started = Date.now();
  execFileSync("tar", ["--posix", "-P", "-C", cwd, "--use-compress-program", compressor(false), "-cf", partial, ...present],
    { stdio: ["ignore", "inherit", "inherit"] });
  fs.renameSync(partial, file);
  console.log(`Cache Size: ~${mb(file)} MB, saved in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  console.log(`Cache saved with key: ${key}`);
}

function extract(found) {
  const cwd = process.env.GITHUB_WORKSPACE || process.cwd();
  const started = Date.now();
  execFileSync("tar", ["-P", "-C", cwd, "--use-compress-program", compressor(true), "-xf", found.file],
    { stdio: ["ignore", "inherit", "inherit"] });
  console.log(`Cache Size: ~${mb(found.file)} MB, restored in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  console.log(`Cache restored from key: ${found.key}`);
}

module.exports = { find, create, extract, archiveOf };
