//! The cost model in the subgraph SDL: `@cost(weight:)` and `@listSize` on
//! the fields [`super::model`] weighs or sizes, imported through the
//! Federation v2.9 link, which is the version that carries them. Apollo
//! Router's demand control and Grafbase read them to estimate an operation
//! before sending it here.
//!
//! async-graphql prints its own v2.5 link and knows neither directive, so the
//! SDL it prints is decorated here, and the `_service { sdl }` answer it
//! builds at run time is replaced by the decorated text
//! ([`replace_service_sdl`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::model::{CostModel, ListSize};

/// The Federation link version that defines `@cost` and `@listSize`.
pub const FEDERATION_LINK: &str = "https://specs.apollo.dev/federation/v2.9";

/// `sdl` (async-graphql's subgraph SDL) with the cost directives on its
/// fields and the link raised to v2.9, importing them.
pub fn decorate(sdl: &str) -> String {
    // Each field's directives go at the end of the line that holds its type.
    let mut at_line: BTreeMap<usize, String> = BTreeMap::new();
    for cost in CostModel::of_sdl(sdl).fields() {
        let mut directives = String::new();
        if let Some(weight) = cost.weight {
            let _ = write!(directives, " @cost(weight: {weight})");
        }
        if let Some(size) = &cost.list_size {
            directives.push_str(&list_size(size));
        }
        if !directives.is_empty() {
            at_line.entry(cost.type_line).or_default().push_str(&directives);
        }
    }
    let mut out = String::with_capacity(sdl.len() + at_line.len() * 64);
    let mut in_link = false;
    for (i, line) in sdl.lines().enumerate() {
        let line = line.replace("https://specs.apollo.dev/federation/v2.5", FEDERATION_LINK);
        in_link |= line.starts_with("extend schema @link(");
        out.push_str(&line);
        if in_link && line.trim_start().starts_with("import: [") && line.contains("\"@key\"") {
            // The federation link's import list: add the two directives before its `]`.
            out.truncate(out.len() - 1);
            out.push_str(", \"@cost\", \"@listSize\"]");
            in_link = false;
        }
        if let Some(directives) = at_line.get(&(i + 1)) {
            out.push_str(directives);
        }
        out.push('\n');
    }
    out
}

fn list_size(size: &ListSize) -> String {
    let quoted = |names: &[&str]| names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ");
    let mut out = format!(" @listSize(assumedSize: {}", size.assumed);
    if !size.slicing.is_empty() {
        let _ = write!(out, ", slicingArguments: [{}]", quoted(&size.slicing));
    }
    if !size.sized_fields.is_empty() {
        let _ = write!(out, ", sizedFields: [{}]", quoted(&size.sized_fields));
    }
    if !size.slicing.is_empty() {
        // A connection may be paged by `first` or `last`, or by neither (its default page).
        out.push_str(", requireOneSlicingArgument: false");
    }
    out.push(')');
    out
}

/// Replaces async-graphql's undecorated `_service { sdl }` answer (`raw`)
/// with `decorated`, under whatever aliases the request gave: any string
/// equal to `raw` in an object at the root of the answer is that answer.
pub fn replace_service_sdl(data: &mut async_graphql::Value, raw: &str, decorated: &str) {
    let async_graphql::Value::Object(root) = data else { return };
    for value in root.values_mut() {
        let async_graphql::Value::Object(service) = value else { continue };
        for field in service.values_mut() {
            if matches!(field, async_graphql::Value::String(sdl) if sdl.len() == raw.len() && sdl == raw) {
                *field = async_graphql::Value::String(decorated.to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decorated SDL links v2.9, imports both directives, and sizes connections and weighs bodies.
    #[test]
    fn the_subgraph_sdl_carries_the_cost_directives() {
        let raw = crate::graphql::subgraph_builder()
            .finish()
            .sdl_with_options(async_graphql::SDLExportOptions::new().federation().compose_directive());
        let sdl = decorate(&raw);
        assert!(sdl.contains(FEDERATION_LINK) && !sdl.contains("federation/v2.5"));
        assert!(sdl.contains("\"@requiresScopes\", \"@cost\", \"@listSize\"]"));
        assert!(sdl.contains("body: String! @cost(weight: 200)"), "Post.body");
        assert!(sdl.contains("@cost(weight: 20)"), "Comment.body");
        assert!(sdl.contains(
            "): PostConnection! @listSize(assumedSize: 20, slicingArguments: [\"first\", \"last\"], sizedFields: [\"edges\"], requireOneSlicingArgument: false)"
        ));
        assert_eq!(raw.lines().count(), sdl.lines().count(), "directives are appended, never new lines");
    }
}
