// The GraphQL-over-HTTP audit (npm graphql-http) against a real blogql.
// Usage: node audit.mjs <path to the blogql binary>. Starts the server on a
// free port with a fresh data directory, runs every audit, and exits 1
// unless every MUST and every SHOULD passes (MAYs are reported only).
import { auditServer } from "graphql-http";
import { startBlogql } from "./server.mjs";

const { base, stop } = await startBlogql(process.argv[2], "audit");

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
