// Starts a real blogql for a check: a free port, a fresh data directory, a
// known JWT secret; `args` are further `serve` flags. Resolves to { base, stop(code) }; stop kills the server,
// removes the directory and exits with `code`.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export async function startBlogql(binary, name, args = []) {
  const dataDir = mkdtempSync(join(tmpdir(), `blogql-${name}-`));
  const server = spawn(binary, ["serve", "--bind", "127.0.0.1:0", "--data-dir", dataDir, ...args], {
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
  return { base, stop };
}
