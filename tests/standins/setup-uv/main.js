// setup-uv stand-in, main step: report the host's uv; with enable-cache, point UV_CACHE_DIR at a
// fresh folder and restore it from the cache store (an archive, as actions/cache keeps it).
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const { execFileSync } = require("child_process");
const { find, extract } = require("./archive");

const input = (name) => (process.env[`INPUT_${name.toUpperCase()}`] || "").trim();
const output = (name, value) => fs.appendFileSync(process.env.GITHUB_OUTPUT, `${name}=${value}\n`);
const state = (name, value) => fs.appendFileSync(process.env.GITHUB_STATE, `${name}=${value}\n`);
const exportVariable = (name, value) => {
  fs.appendFileSync(process.env.GITHUB_ENV, `${name}=${value}\n`);
  process.env[name] = value;
};

const uv = execFileSync("bash", ["-c", "command -v uv"], { encoding: "utf8" }).trim();
const uvVersion = execFileSync(uv, ["--version"], { encoding: "utf8" }).trim().split(" ")[1];
output("uv-version", uvVersion);
output("uv-path", uv);
fs.appendFileSync(process.env.GITHUB_PATH, `${path.dirname(uv)}\n`);

const workspace = process.env.GITHUB_WORKSPACE || process.cwd();
const workingDirectory = path.resolve(workspace, input("working-directory") || ".");
const pythonVersion = input("python-version");
if (pythonVersion) {
  exportVariable("UV_PYTHON", pythonVersion);
  output("python-version", pythonVersion);
}

if (input("activate-environment") === "true") {
  const venv = path.resolve(workingDirectory, input("venv-path") || ".venv");
  execFileSync(uv, ["venv", "--quiet", venv], { stdio: "inherit", cwd: workingDirectory });
  exportVariable("VIRTUAL_ENV", venv);
  fs.appendFileSync(process.env.GITHUB_PATH, `${path.join(venv, "bin")}\n`);
  output("venv", venv);
}

// hashFiles() of the cache-dependency-glob lines, relative to the working directory
function globRegex(glob) {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    if (glob.startsWith("**/", i)) { out += "(?:.*/)?"; i += 2; }
    else if (glob.startsWith("**", i)) { out += ".*"; i += 1; }
    else if (glob[i] === "*") out += "[^/]*";
    else if (glob[i] === "?") out += "[^/]";
    else out += glob[i].replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${out}$`);
}
function dependencyHash() {
  const lines = input("cache-dependency-glob").split("\n").map((l) => l.trim()).filter(Boolean);
  const include = lines.filter((l) => !l.startsWith("!")).map((l) => globRegex(path.relative(workingDirectory, path.resolve(workingDirectory, l))));
  const exclude = lines.filter((l) => l.startsWith("!")).map((l) => globRegex(path.relative(workingDirectory, path.resolve(workingDirectory, l.slice(1)))));
  const files = [];
  (function walk(dir) {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === ".git" || entry.name === "node_modules") continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) {
        const rel = path.relative(workingDirectory, full);
        if (include.some((r) => r.test(rel)) && !exclude.some((r) => r.test(rel))) files.push(full);
      }
    }
  })(workingDirectory);
  const hash = crypto.createHash("sha256");
  for (const file of files.sort()) hash.update(crypto.createHash("sha256").update(fs.readFileSync(file)).digest());
  return files.length ? hash.digest("hex") : "";
}

const enableCache = input("enable-cache") || "auto";
const shared = process.env.LOCKSTEP_TEST_UV_CACHE;
if (shared && (enableCache === "true" || enableCache === "auto")) {
  // the test bed (tests/actrunner.py, not the benchmarks): uv's cache is the machine's, kept warm
  // across runs and never archived, so that installs cost little in the e2e tier
  exportVariable("UV_CACHE_DIR", shared);
  output("cache-hit", "false");
  console.log(`test bed: uv's cache is the machine's (${shared}), not restored or saved`);
} else if (enableCache === "true" || enableCache === "auto") {
  const cacheDir = path.resolve(input("cache-local-path") || path.join(process.env.RUNNER_TEMP, "setup-uv-cache"));
  fs.rmSync(cacheDir, { recursive: true, force: true });
  fs.mkdirSync(cacheDir, { recursive: true });
  exportVariable("UV_CACHE_DIR", cacheDir);
  const pruned = input("prune-cache") !== "false" ? "pruned" : "";
  const python = pythonVersion || execFileSync("python3", ["-c", "import platform; print(platform.python_version())"], { encoding: "utf8" }).trim();
  const suffix = input("cache-suffix") ? `-${input("cache-suffix")}` : "";
  const key = `setup-uv-1-${process.arch}-${process.platform}-${python}-${pruned}-${dependencyHash()}${suffix}`;
  const found = find(key, []);
  if (found) extract(found);
  else console.log(`No GitHub Actions cache found for key: ${key}`);
  output("cache-key", key);
  output("cache-hit", String(Boolean(found)));
  state("key", key);
  state("hit", String(Boolean(found)));
  state("dir", cacheDir);
  state("prune", input("prune-cache") !== "false" ? "true" : "false");
  state("save", input("save-cache") !== "false" ? "true" : "false");
} else {
  output("cache-hit", "false");
}
