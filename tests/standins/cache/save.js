// After the job: save the folder under its key on a miss (stand-in for actions/cache).
const fs = require("fs");
const hit = process.env.STATE_hit === "true";
const store = process.env.STATE_store;
const target = process.env.STATE_target;
if (!hit && target && fs.existsSync(target)) {
  fs.cpSync(target, store, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  console.log(`cache saved: ${store}`);
}
