// Composes blogql's subgraph SDL with a small second subgraph that extends
// `Post` (a "reviews" service), the way Apollo Router's supergraph is built,
// and checks that the cost directives (`@cost`, `@listSize`) reach the supergraph.
// Usage: node compose.mjs <blogql subgraph SDL file>. Exits 1 on any
// composition error or hint of an error.
import { readFileSync } from "node:fs";
import { composeServices } from "@apollo/composition";
import { parse } from "graphql";

const blogql = readFileSync(process.argv[2], "utf8");
const reviews = `
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@shareable"])
  type Post @key(fields: "id") {
    id: ID!
    "Reviews of the post, from the reviews service."
    reviews: [Review!]!
  }
  "An editor's review of a post."
  type Review {
    "The review's score, 1 to 5."
    score: Int!
  }
  type Query {
    "The newest reviews."
    latestReviews: [Review!]!
  }
`;

const result = composeServices([
  { name: "blogql", url: "http://blogql.invalid/graphql", typeDefs: parse(blogql) },
  { name: "reviews", url: "http://reviews.invalid/graphql", typeDefs: parse(reviews) },
]);
if (result.errors && result.errors.length > 0) {
  for (const error of result.errors) console.error(`composition error: ${error.message}`);
  process.exit(1);
}
const supergraph = result.supergraphSdl;
// The cost directives survive composition, where a router's demand control reads them.
for (const needle of [
  "reviews: [Review!]!", "type User", "type Comment", "join__type(graph: BLOGQL",
  "@cost(weight: 200)", "@listSize(assumedSize: 20, slicingArguments: [\"first\", \"last\"], sizedFields: [\"edges\"]",
]) {
  if (!supergraph.includes(needle)) {
    console.error(`the supergraph lacks ${needle}`);
    process.exit(1);
  }
}
console.log(`composition ok: ${supergraph.split("\n").length} lines of supergraph SDL, ${(result.hints ?? []).length} hints`);
