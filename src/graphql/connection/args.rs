//! A connection field's page arguments: read by the field, by a parent
//! list loading the page ahead (`page_ahead`), and by the plain path
//! (`page_of`), all through one parser so the three agree.

use async_graphql::parser::types::Field;
use async_graphql::{Lookahead, Variables};

use crate::domain::Page;
use crate::error::Result;

/// The page that `field`'s arguments ask for, with `vars` for the
/// variables they use; `None` if they are not valid or use a variable the
/// request did not send (the executor then answers, with its defaults and errors).
pub fn page_of(field: &Field, vars: &Variables) -> Option<Page> {
    let args = field.arguments.iter().map(|(name, value)| {
        let value = value.node.clone().into_const_with(|var| vars.get(&var).cloned().ok_or(())).ok()?;
        Some((name.node.as_str(), value))
    });
    page_from(args)
}

/// The page of a connection field's arguments, or `None` if any is not
/// one a connection takes, or they do not make a valid page.
fn page_from<'a>(args: impl Iterator<Item = Option<(&'a str, async_graphql::Value)>>) -> Option<Page> {
    let mut page = PageArgs::default();
    for arg in args {
        match arg? {
            ("first", async_graphql::Value::Number(n)) => page.first = Some(i32::try_from(n.as_i64()?).ok()?),
            ("last", async_graphql::Value::Number(n)) => page.last = Some(i32::try_from(n.as_i64()?).ok()?),
            ("after", async_graphql::Value::String(c)) => page.after = Some(c),
            ("before", async_graphql::Value::String(c)) => page.before = Some(c),
            (_, async_graphql::Value::Null) => {}
            _ => return None,
        }
    }
    page.page().ok()
}

/// The page a connection field below `parent` will ask for, read from the
/// query ahead of time so a parent list can load it for all its items in
/// one batch. `None` unless the field is selected exactly once (aliases with
/// different pages are left to the field) with valid arguments.
pub fn page_ahead(parent: &Lookahead<'_>, field: &str) -> Option<Page> {
    let mut fields = parent.field(field).selection_fields();
    let only = fields.pop().filter(|_| fields.is_empty())?;
    let args = only.arguments().ok()?;
    page_from(args.iter().map(|(name, value)| Some((name.as_str(), value.clone()))))
}

/// The page arguments every connection field takes.
#[derive(Debug, Default)]
pub struct PageArgs {
    /// Forward page size.
    pub first: Option<i32>,
    /// Forward start cursor.
    pub after: Option<String>,
    /// Backward page size.
    pub last: Option<i32>,
    /// Backward end cursor.
    pub before: Option<String>,
}

impl PageArgs {
    /// Validates the arguments into a page request.
    pub fn page(&self) -> Result<Page> {
        Page::parse(self.first, self.after.as_deref(), self.last, self.before.as_deref())
    }
}
