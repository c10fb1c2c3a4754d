// After the job: save the folder under its key on a miss (stand-in for actions/cache).
const fs = require("fs");
const path = require("path");
const hit = process.env.STATE_hit === "true";
const store = process.env.STATE_store;
const target = process.env.STATE_target;
if (!hit && target && fs.existsSync(target)) {
  fs.cpSync(target, store, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  console.log(`cache saved: ${store}`);
}

// For the tests only: keep the git and DVC config files the job leaves in its workspace. Post
// steps run after every main step, and act removes a finished job's workspace, while a
// self-hosted runner keeps it for the next job.
const leftovers = process.env.LOCKSTEP_TEST_LEFTOVERS;
const workspace = process.env.GITHUB_WORKSPACE;
function keep(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== "cache" && entry.name !== "objects") {
      keep(full);
    } else if (entry.isFile() && /(^|\/)\.(git|dvc)\/config(\.local)?$/.test(full)) {
      const copy = path.join(leftovers, path.relative(workspace, full));
      fs.mkdirSync(path.dirname(copy), { recursive: true });
      fs.copyFileSync(full, copy);
    }
  }
}
if (leftovers && workspace && fs.existsSync(workspace)) {
  keep(workspace);
}
