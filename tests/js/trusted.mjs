// Trusted documents with the manifest a real client build writes:
// relay-compiler's `persistConfig` (relay/relay.persisted.json) writes
// persisted_queries.json and artifacts that carry only an id. blogql serves
// that manifest with --require-trusted-documents; each operation runs by the
// `doc_id` Relay's network layer sends, and any other document is refused.
// Usage: node trusted.mjs <blogql binary> <persisted_queries.json> <artifact dir>.
import { startBlogql } from "./server.mjs";

const [binary, manifest, artifacts] = process.argv.slice(2);
const { base, stop } = await startBlogql(binary, "trusted", [
  "--trusted-documents", manifest, "--require-trusted-documents",
]);
const post = async (body) => {
  const resp = await fetch(`${base}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return resp.json();
};
const failures = [];
const expect = (what, ok, got) => {
  if (!ok) failures.push(`${what}: ${JSON.stringify(got)}`);
};

const query = (await import(`${artifacts}/fragmentsUserPostsPaginationQuery.graphql.js`)).default;
expect("the artifact carries an id and no text", query.params.id && query.params.text === null, query.params);
const missing = "000000000000000000000000";
const byId = await post({ doc_id: query.params.id, variables: { id: missing } });
expect("the refetch query runs by doc_id", byId.data && byId.data.node === null && !byId.errors, byId);

const mutation = (await import(`${artifacts}/fragmentsDeletePostMutation.graphql.js`)).default;
const deleted = await post({ doc_id: mutation.params.id, variables: { id: missing, connections: [] } });
const deleteCode = deleted.errors && deleted.errors[0].extensions.code;
expect("the mutation runs by doc_id (and asks for a token)", deleteCode === "UNAUTHENTICATED", deleted);

const other = await post({ query: "{ posts { totalCount } }" });
const otherCode = other.errors && other.errors[0].extensions.code;
expect("a document not in the manifest is refused", otherCode === "UNTRUSTED_DOCUMENT", other);
const unknown = await post({ doc_id: "0123456789abcdef0123456789abcdef" });
const unknownCode = unknown.errors && unknown.errors[0].extensions.code;
expect("an unknown id is not found", unknownCode === "PERSISTED_QUERY_NOT_FOUND", unknown);

for (const failure of failures) console.error(`FAILED ${failure}`);
if (failures.length === 0) console.log("relay's persisted queries run by doc_id; other documents are refused");
stop(failures.length === 0 ? 0 : 1);
