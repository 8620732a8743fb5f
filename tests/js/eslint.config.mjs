// @graphql-eslint's Relay rules over the committed client schema (run from
// the repository root: `eslint -c tests/js/eslint.config.mjs schema.graphql`).
// `listTypeCanWrapOnlyEdgeType` (on by default) is turned off: the mutation payloads list ids and
// objects (`deletedCommentIds`, `affectedUsers`) and `nodes` lists nodes by design.
import graphql from "@graphql-eslint/eslint-plugin";

export default [
  {
    files: ["**/*.graphql"],
    languageOptions: {
      parser: graphql.parser,
      parserOptions: { graphQLConfig: { schema: "schema.graphql" } },
    },
    plugins: { "@graphql-eslint": graphql },
    rules: {
      "@graphql-eslint/relay-connection-types": "error",
      "@graphql-eslint/relay-edge-types": ["error", { withEdgeSuffix: true, shouldImplementNode: true, listTypeCanWrapOnlyEdgeType: false }],
      "@graphql-eslint/relay-arguments": ["error", { includeBoth: true }],
      "@graphql-eslint/relay-page-info": "error",
    },
  },
];
