// Subscriptions through the clients apps use, against a real blogql.
// Usage: node live.mjs <blogql binary> <graphql-ws | graphql-sse | apollo>.
//   graphql-ws   graphql-ws's createClient (graphql-transport-ws), the token in connectionParams
//   graphql-sse  graphql-sse's createClient (distinct connections), the token in a header
//   apollo       Apollo Client 4's ApolloClient with GraphQLWsLink
// Each check signs up, comments, and resumes `commentAdded` from the first
// comment's cursor (so the second arrives by replay, with no race against
// the subscription starting), then gets a third comment live; it checks
// `feedPostAdded` with the token the same way, and that a missing post is
// a NOT_FOUND error for that operation. Exits 1 on any difference.
import WebSocket from "ws";
import { createClient as createWsClient } from "graphql-ws";
import { createClient as createSseClient } from "graphql-sse";
import { ApolloClient, InMemoryCache, gql } from "@apollo/client";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { startBlogql } from "./server.mjs";

const [binary, which] = process.argv.slice(2);
const { base, stop } = await startBlogql(binary, `live-${which}`);
const deadline = setTimeout(() => {
  console.error(`${which}: no answer within 30 s`);
  stop(1);
}, 30000);

async function graphql(query, variables, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const resp = await fetch(`${base}/graphql`, { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  const body = await resp.json();
  if (body.errors) throw new Error(`${query}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

const signUp = await graphql(
  "mutation($i: SignUpInput!) { signUp(input: $i) { token } }",
  { i: { name: "Ann", email: "ann@example.com", password: "correct horse" } },
);
const token = signUp.signUp.token;
const createPost = (title) =>
  graphql("mutation($i: CreatePostInput!) { createPost(input: $i) { id cursor } }", { i: { title, body: "b" } }, token);
const comment = (postId, body) =>
  graphql("mutation($i: CreateCommentInput!) { createComment(input: $i) { cursor } }", { i: { postId, body } }, token);

const post = (await createPost("watched")).createPost;
const first = (await comment(post.id, "one")).createComment;
await comment(post.id, "two");

const COMMENTS = "subscription($p: ID!, $a: String) { commentAdded(postId: $p, after: $a) { body author { name } } }";
const FEED = "subscription($a: String) { feedPostAdded(after: $a) { title } }";
const MISSING = "subscription { commentAdded(postId: \"5f0000000000000000000000\") { body } }";

// One subscription through the chosen client: calls `onData(data)` per
// result, `onError(errors)` on an error; returns a function that ends it.
let subscribe;
let dispose = () => {};
if (which === "graphql-ws" || which === "apollo") {
  const ws = createWsClient({
    url: `${base.replace("http", "ws")}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${token}` },
    lazy: true,
  });
  dispose = () => ws.dispose();
  if (which === "graphql-ws") {
    subscribe = (query, variables, onData, onError) =>
      ws.subscribe({ query, variables }, {
        next: (result) => (result.errors ? onError(result.errors) : onData(result.data)),
        error: (errors) => onError(Array.isArray(errors) ? errors : [errors]),
        complete: () => {},
      });
  } else {
    // GraphQLWsLink reads the browser's global WebSocket (Node 20 has none).
    globalThis.WebSocket ??= WebSocket;
    const client = new ApolloClient({ link: new GraphQLWsLink(ws), cache: new InMemoryCache() });
    subscribe = (query, variables, onData, onError) => {
      const sub = client.subscribe({ query: gql(query), variables }).subscribe({
        next: (result) => (result.error ? onError(result.error.errors ?? [result.error]) : onData(result.data)),
        error: (error) => onError(error.errors ?? [error]),
      });
      return () => sub.unsubscribe();
    };
  }
} else if (which === "graphql-sse") {
  const sse = createSseClient({ url: `${base}/graphql`, headers: { Authorization: `Bearer ${token}` } });
  dispose = () => sse.dispose();
  subscribe = (query, variables, onData, onError) =>
    sse.subscribe({ query, variables }, {
      next: (result) => (result.errors ? onError(result.errors) : onData(result.data)),
      error: (errors) => onError(Array.isArray(errors) ? errors : [errors]),
      complete: () => {},
    });
} else {
  console.error(`unknown client ${which}`);
  stop(2);
}

// Resolves with the first `n` results of a subscription (then ends it), or
// rejects with its errors.
function take(query, variables, n, whenStarted = async () => {}) {
  return new Promise((resolve, reject) => {
    const got = [];
    let end = () => {};
    end = subscribe(query, variables, (data) => {
      got.push(data);
      if (got.length === 1) whenStarted().catch(reject);
      if (got.length === n) {
        end();
        resolve(got);
      }
    }, reject);
  });
}

const failures = [];
const expect = (what, actual, expected) => {
  const [a, e] = [JSON.stringify(actual), JSON.stringify(expected)];
  console.log(`${a === e ? "ok" : "DIFFERS"}: ${what}${a === e ? "" : `: got ${a}, expected ${e}`}`);
  if (a !== e) failures.push(what);
};

// The replayed comment arrives first; once it has, the subscription is
// live, so a comment written then must arrive next.
const comments = await take(COMMENTS, { p: post.id, a: first.cursor }, 2, () => comment(post.id, "three"));
expect("commentAdded: the replayed comment, then the live one", comments.map((d) => d.commentAdded.body), ["two", "three"]);
expect("commentAdded: nested author", comments[0].commentAdded.author.name, "Ann");

const mine = (await createPost("mine")).createPost;
await createPost("mine too");
const feed = await take(FEED, { a: mine.cursor }, 2, () => createPost("mine three"));
expect("feedPostAdded with the token: replayed, then live", feed.map((d) => d.feedPostAdded.title), ["mine too", "mine three"]);

const refused = await take(MISSING, {}, 1).then(
  () => "answered",
  (errors) => errors[0]?.extensions?.code ?? JSON.stringify(errors),
);
expect("a missing post is NOT_FOUND for that operation", refused, "NOT_FOUND");

clearTimeout(deadline);
dispose();
stop(failures.length === 0 ? 0 : 1);
