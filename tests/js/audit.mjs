// The GraphQL-over-HTTP audit (npm graphql-http) against a real blogql.
// Usage: node audit.mjs <path to the blogql binary>. Starts the server on a
// free port with a fresh data directory, runs every audit, and exits 1
// unless every MUST and every SHOULD passes (MAYs are reported only).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { auditServer } from "graphql-http";

const binary = process.argv[2];
const dataDir = mkdtempSync(join(tmpdir(), "blogql-audit-"));
const server = spawn(binary, ["serve", "--bind", "127.0.0.1:0", "--data-dir", dataDir], {
  env: { ...process.env, BLOGQL_JWT_SECRET: "audit-secret-of-thirty-two-bytes!", RUST_LOG: "info", NO_COLOR: "1" },
  stdio: ["ignore", "pipe", "pipe"],
});
const stop = (code) => {
  server.kill("SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
  process.exit(code);
};
const base = await new Promise((resolve, reject) => {
  let seen = "";
  const timer = setTimeout(() => reject(new Error(`blogql did not start:\n${seen}`)), 20000);
  const watch = (chunk) => {
    seen += chunk.toString();
    const found = seen.match(/http:\/\/(127\.0\.0\.1:\d+)\//);
    if (found) {
      clearTimeout(timer);
      resolve(`http://${found[1]}`);
    }
  };
  server.stdout.on("data", watch);
  server.stderr.on("data", watch);
  server.on("exit", (code) => reject(new Error(`blogql exited with ${code}:\n${seen}`)));
}).catch((err) => {
  console.error(err.message);
  stop(1);
});

const results = await auditServer({ url: `${base}/graphql` });
const tally = { MUST: [0, 0], SHOULD: [0, 0], MAY: [0, 0] };
const failures = [];
for (const result of results) {
  const level = result.name.split(" ")[0];
  const ok = result.status === "ok";
  tally[level][ok ? 0 : 1] += 1;
  if (!ok) {
    const line = `${result.status.toUpperCase()} ${result.name}: ${result.reason}`;
    console.log(line);
    if (level !== "MAY") failures.push(line);
  }
}
for (const [level, [ok, notOk]] of Object.entries(tally)) console.log(`${level}: ${ok}/${ok + notOk} pass`);
stop(failures.length === 0 ? 0 : 1);
