//! Step 3b: what the operation costs, by the cost model the subgraph SDL
//! publishes ([`crate::graphql::cost`]), against `--max-query-complexity`.
//! It runs after the size check, which bounds the walk (fragments expanded)
//! to `--max-query-fields` fields.

use async_graphql::Variables;
use async_graphql::parser::types::ExecutableDocument;

use super::Refusal;
use crate::code::Code;
use crate::graphql::cost::CostModel;

/// The operation's cost, or a refusal when it is over `max`.
pub fn check(
    model: &CostModel,
    doc: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
    max: usize,
) -> Result<u64, Refusal> {
    let cost = model.estimate(doc, operation_name, variables);
    if cost > max as u64 {
        return Err(Refusal::new(
            Code::GraphqlValidationFailed,
            format!("the query is too complex: it is estimated at {cost}, over the limit of {max}"),
        ));
    }
    Ok(cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An operation within the limit passes with its cost; one over it is refused with the figures.
    #[test]
    fn costs_over_the_limit_are_refused() {
        let model = CostModel::of_sdl(&crate::graphql::sdl());
        let doc = async_graphql::parser::parse_query("{ posts(first: 100) { edges { node { body } } } }").expect("doc");
        assert_eq!(check(&model, &doc, None, &Variables::default(), 25_000), Ok(1 + 100 * 202));
        let refusal = check(&model, &doc, None, &Variables::default(), 20_000).expect_err("over");
        assert_eq!(refusal.code, Code::GraphqlValidationFailed);
        assert!(refusal.message.contains("too complex") && refusal.message.contains("20201"));
    }
}
