//! The executable schema this process serves, built twice: once validating
//! every request in full, once skipping the rules a document that already
//! passed them cannot fail again.
//!
//! GraphQL validation is a property of the document (the spec validates a
//! document, then coerces the variables as a separate step), but
//! async-graphql's full validation also substitutes the variables into the
//! arguments and checks them: the only rule that reads them. So a document
//! the full validation accepted once (the parsed-document cache keeps only
//! those) can only fail it again through its variables. When every variable
//! the operation declares is a plain built-in scalar (`ID`, `String`,
//! `Boolean`, `Int`, nullable or not) and the request gives it a non-null
//! value of that scalar's kind, the variable check cannot fail either
//! ([`variables_fit`] decides), and the request runs on the schema built with
//! `ValidationMode::Fast`, which still counts depth and complexity. Anything
//! else (lists, input objects, enums, defaults, nulls) runs the full
//! validation as before. In the write mix, validation was 5.5% of the core.

use async_graphql::parser::types::{BaseType, DocumentOperations, ExecutableDocument, OperationDefinition};
use async_graphql::{ValidationMode, Value, Variables};

use super::{BlogSchema, RECURSION_HEADROOM, SubgraphSchema, cost, schema_builder, subgraph_builder, subgraph_sdls};
use crate::app::AppState;

/// One build of the schema: for clients, or as a Federation v2 subgraph.
#[derive(Clone)]
enum Served {
    /// Plain GraphQL for clients.
    Client(BlogSchema),
    /// A Federation v2 subgraph.
    Subgraph(SubgraphSchema),
}

/// The executable schema, validating in full and validating what a
/// validated document can still get wrong (see the module doc).
#[derive(Clone)]
pub struct AppSchema {
    /// Every rule, on every request.
    strict: Served,
    /// For documents validated before whose variables [`variables_fit`].
    validated: Served,
}

impl AppSchema {
    /// The SDL of the schema this process serves.
    pub fn sdl(&self) -> String {
        match &self.strict {
            Served::Client(schema) => schema.sdl(),
            Served::Subgraph(schema) => schema.sdl(),
        }
    }

    /// Executes one request; `validated_before` says the document passed
    /// the full validation on an earlier request and the variables fit (see
    /// the module doc), so only what they could break is checked again.
    pub async fn execute(&self, request: async_graphql::Request, validated_before: bool) -> async_graphql::Response {
        match if validated_before { &self.validated } else { &self.strict } {
            Served::Client(schema) => schema.execute(request).await,
            Served::Subgraph(schema) => {
                let mut resp = schema.execute(request).await;
                let (raw, decorated) = subgraph_sdls();
                cost::publish::replace_service_sdl(&mut resp.data, raw, decorated);
                resp
            }
        }
    }

    /// Executes one request as a stream of answers: one per event for a
    /// subscription, a single one otherwise. Always fully validated: a
    /// subscription is validated once for all its events.
    pub fn execute_stream(
        &self,
        request: async_graphql::Request,
    ) -> futures::stream::BoxStream<'static, async_graphql::Response> {
        match &self.strict {
            Served::Client(schema) => Box::pin(schema.execute_stream(request)),
            Served::Subgraph(schema) => Box::pin(schema.execute_stream(request)),
        }
    }
}

/// Builds the executable schema over the application state, with its query limits.
pub fn build_schema(state: AppState) -> AppSchema {
    let limits = state.settings.graphql.clone();
    // No extensions: any extension wraps every field resolution, and
    // `plain` answers lists without the per-field hooks one would add. The query
    // size is checked in `http` before the schema sees the document.
    macro_rules! finish {
        ($builder:expr, $mode:expr) => {{
            let builder = $builder
                .validation_mode($mode)
                .limit_depth(limits.max_query_depth)
                .limit_recursive_depth(limits.max_query_depth.saturating_add(RECURSION_HEADROOM))
                .data(state.clone());
            if limits.introspection { builder.finish() } else { builder.disable_introspection().finish() }
        }};
    }
    let build = |mode| {
        if limits.federation {
            Served::Subgraph(finish!(subgraph_builder(), mode))
        } else {
            Served::Client(finish!(schema_builder(), mode))
        }
    };
    AppSchema { strict: build(ValidationMode::Strict), validated: build(ValidationMode::Fast) }
}

/// Whether the full validation's variable check cannot fail for `variables`
/// in the operation `operation_name` of `doc`: every variable the operation
/// declares is a built-in scalar, not a list, without a default, and given a
/// non-null value that the scalar accepts (as async-graphql's own `is_valid`
/// for it does). False whenever in doubt; the full validation then runs.
pub fn variables_fit(doc: &ExecutableDocument, operation_name: Option<&str>, variables: &Variables) -> bool {
    let Some(operation) = selected_operation(doc, operation_name) else { return false };
    operation.variable_definitions.iter().all(|def| {
        let def = &def.node;
        let BaseType::Named(name) = &def.var_type.node.base else { return false };
        if def.default_value.is_some() {
            return false;
        }
        match (name.as_str(), variables.get(&def.name.node)) {
            ("ID", Some(Value::String(_))) | ("String", Some(Value::String(_))) => true,
            ("ID" | "Int", Some(Value::Number(n))) => n.is_i64(),
            ("Boolean", Some(Value::Boolean(_))) => true,
            _ => false,
        }
    })
}

/// The operation a request selects, as async-graphql selects it; `None` where
/// it would refuse the request (the full validation then says why).
pub(crate) fn selected_operation<'a>(
    doc: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&doc.operations, operation_name) {
        (DocumentOperations::Single(op), None) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| &op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next().map(|op| &op.node),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
