//! The request path before execution, fed arbitrary bytes: the lexical pass,
//! and for documents it admits the parser, every document check the server
//! runs (size, `__typename`, introspection cost, mutation fields, `_entities`)
//! and async-graphql's validation against the real schema. A crash, a stack
//! overflow, or an input over libFuzzer's time or memory limit (set in
//! `.ci/run`) is a failure.

#![no_main]

use std::sync::LazyLock;

use blogql::http::steps;
use blogql::limits::introspection;
use libfuzzer_sys::fuzz_target;

/// The server's default bounds, as a server with no flags runs them.
static SETTINGS: LazyLock<blogql::settings::GraphqlSettings> = LazyLock::new(Default::default);

/// The client schema without runtime data: validation needs only its types.
static SCHEMA: LazyLock<blogql::graphql::BlogSchema> = LazyLock::new(|| {
    blogql::graphql::schema_builder()
        .limit_depth(SETTINGS.max_query_depth)
        .limit_recursive_depth(SETTINGS.max_query_depth + blogql::graphql::RECURSION_HEADROOM)
        .finish()
});

static SHAPE: LazyLock<introspection::Shape> = LazyLock::new(|| introspection::Shape::of_sdl(&blogql::graphql::sdl()));

/// The cost model the server enforces (and the subgraph SDL publishes).
static COST: LazyLock<blogql::graphql::cost::CostModel> =
    LazyLock::new(|| blogql::graphql::cost::CostModel::of_sdl(&blogql::graphql::sdl()));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The server's own steps 2 and 3, and the cost step (see `blogql::http::steps`), as a fresh request meets them.
    let Ok(Some(parsed)) = steps::parse::parse(text, &SETTINGS, &SHAPE) else {
        return;
    };
    let doc = parsed.doc;
    for get in [false, true] {
        let _ = steps::operation::check(&doc, None, &async_graphql::Variables::default(), get, &SETTINGS);
    }
    let federating = blogql::settings::GraphqlSettings { federation: true, ..SETTINGS.clone() };
    let _ = steps::operation::check(&doc, None, &async_graphql::Variables::default(), false, &federating);
    let variables = async_graphql::Variables::default();
    if steps::cost::check(&COST, &doc, None, &variables, SETTINGS.max_query_complexity).is_err() {
        return;
    }
    // Validation (and, for what validates, execution without a store: every
    // resolver then fails cleanly) on the document the checks admitted.
    let mut request = async_graphql::Request::new(text);
    request.set_parsed_query(doc);
    let _ = futures::executor::block_on(SCHEMA.execute(request));
});
