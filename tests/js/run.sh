#!/usr/bin/env bash
# The checks clients' own tools make of blogql, each by name:
#   schema-lint    graphql-schema-linter: descriptions everywhere, Relay connection rules
#   relay-lint     @graphql-eslint: relay-connection-types, relay-edge-types, relay-arguments, relay-page-info
#   composition    @apollo/composition: subgraph.graphql composes with a second subgraph extending Post, keeping @cost/@listSize
#   relay-compiler refetchable, paginated fragments on User.posts and Post.comments compile
#   http-audit     graphql-http's audit: every MUST and SHOULD of GraphQL over HTTP
#   live-graphql-ws  graphql-ws's createClient: subscriptions, resume, the token, NOT_FOUND
#   live-graphql-sse graphql-sse's createClient (distinct connections): the same
#   live-apollo      Apollo Client 4 with GraphQLWsLink: the same
#   trusted-relay  relay-compiler's persisted queries as blogql's required trusted documents
# Usage: tests/js/run.sh <blogql binary>. Installs the pinned packages
# (package-lock.json) with `npm ci` when needed. Prints one result line per
# check as `js check <name>: ok|FAILED` and exits 1 if any failed.
set -uo pipefail
binary=$(realpath "$1")
cd "$(dirname "$0")"
root=$(realpath ../..)

if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.package-lock.json.installed; then
    echo "installing the pinned npm packages (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error || { echo "js check install: FAILED"; exit 1; }
    cp package-lock.json node_modules/.package-lock.json.installed
fi

status=0
check() { # $1: name, rest: command
    local name=$1; shift
    echo "== js check $name"
    if "$@"; then
        echo "js check $name: ok"
    else
        echo "js check $name: FAILED"
        status=1
    fi
}

relay() {
    (cd relay && rm -rf __generated__ && mkdir __generated__ && ../node_modules/.bin/relay-compiler)
}

# relay-compiler's local persisting needs its output file to exist before it runs.
trusted_relay() {
    (cd relay && rm -rf __persisted__ && mkdir __persisted__ && echo '{}' > __persisted__/persisted_queries.json \
        && ../node_modules/.bin/relay-compiler relay.persisted.json) || return 1
    node trusted.mjs "$binary" "$PWD/relay/__persisted__/persisted_queries.json" "$PWD/relay/__persisted__"
}

check schema-lint node_modules/.bin/graphql-schema-linter \
    --rules types-have-descriptions,fields-have-descriptions,arguments-have-descriptions,input-object-values-have-descriptions,enum-values-have-descriptions,relay-connection-types-spec,relay-connection-arguments-spec,relay-page-info-spec \
    "$root/schema.graphql"
check relay-lint bash -c "cd '$root' && '$PWD/node_modules/.bin/eslint' -c tests/js/eslint.config.mjs schema.graphql"
check composition node compose.mjs "$root/subgraph.graphql"
check relay-compiler relay
check http-audit node audit.mjs "$binary"
check live-graphql-ws node live.mjs "$binary" graphql-ws
check live-graphql-sse node live.mjs "$binary" graphql-sse
check live-apollo node live.mjs "$binary" apollo
check trusted-relay trusted_relay
exit "$status"
