// Restore the archive for this key, or for the newest key starting with a restore-key (stand-in
// for actions/cache: extracting the archive costs what the archive's size costs).
const fs = require("fs");
const { find, extract } = require("./archive");
const input = (name) => (process.env[`INPUT_${name}`] || "").trim();
const key = input("KEY");
const prefixes = input("RESTORE-KEYS").split("\n").map((line) => line.trim()).filter(Boolean);
const found = find(key, prefixes);
if (found && input("LOOKUP-ONLY") !== "true") {
  extract(found);
} else if (found) {
  console.log(`Cache found (lookup only) for key: ${found.key}`);
} else {
  console.log(`Cache not found for input keys: ${[key, ...prefixes].join(", ")}`);
  if (input("FAIL-ON-CACHE-MISS") === "true") {
    console.log(`::error::Failed to restore cache entry. Exiting as fail-on-cache-miss is set. Input key: ${key}`);
    process.exit(1);
  }
}
const hit = Boolean(found && found.exact);
fs.appendFileSync(process.env.GITHUB_OUTPUT, `cache-hit=${hit}\n`);
fs.appendFileSync(process.env.GITHUB_STATE, `hit=${hit}\nkey=${key}\npaths=${JSON.stringify(input("PATH"))}\n`);
