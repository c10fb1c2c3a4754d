// After the job: on a miss, archive the paths under the key (stand-in for actions/cache, which
// saves only when the exact key was not restored and no entry for it exists yet).
const fs = require("fs");
const path = require("path");
const { archiveOf, create } = require("./archive");
const hit = process.env.STATE_hit === "true";
const key = process.env.STATE_key;
if (key && !hit) {
  if (fs.existsSync(archiveOf(key))) {
    console.log(`Cache entry for key ${key} already exists: not saved`);
  } else {
    create(key, JSON.parse(process.env.STATE_paths || '""'));
  }
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
