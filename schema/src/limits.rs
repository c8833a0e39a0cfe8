use std::{collections::HashSet, sync::Arc};

use async_graphql::{
    ServerError, ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::{DocumentOperations, ExecutableDocument, Selection, SelectionSet},
};

use crate::codes::with_code;

/// What a single document may ask for, on every transport.
#[derive(Debug, Clone)]
pub struct Limits {
    pub depth: usize,
    pub complexity: usize,
    pub aliases: usize,
    pub recursive_depth: usize,
    pub directives: usize,
    /// Off in production for mobile clients.
    pub introspection: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            depth: 12,
            complexity: 2_000,
            aliases: 30,
            recursive_depth: 32,
            directives: 10,
            introspection: true,
        }
    }
}

/// Refuses documents with more aliased fields than allowed. async-graphql has no such limit,
/// and aliases are how one request asks for the same expensive field many times.
pub struct AliasLimit {
    max: usize,
}

impl AliasLimit {
    pub fn new(max: usize) -> Self {
        Self { max }
    }
}

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExtension { max: self.max })
    }
}

struct AliasLimitExtension {
    max: usize,
}

#[async_trait::async_trait]
impl Extension for AliasLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next
            .run(ctx, query, variables)
            .await
            .map_err(|e| with_code(e, "GRAPHQL_PARSE_FAILED"))?;
        check_aliases(&doc, self.max)?;
        Ok(doc)
    }
}

fn check_aliases(doc: &ExecutableDocument, max: usize) -> ServerResult<()> {
    if count_aliases(doc, max) > max {
        return Err(with_code(
            ServerError::new(format!("Query has more than {max} aliases."), None),
            "QUERY_TOO_MANY_ALIASES",
        ));
    }
    Ok(())
}

/// The checks of a parsed document that the schema's own validation does not make (aliases),
/// for transports that parse the document themselves.
pub fn check_document(doc: &ExecutableDocument, limits: &Limits) -> ServerResult<()> {
    check_aliases(doc, limits.aliases)
}

/// Counts aliased fields as executed: a fragment counts each time it is spread. Stops counting
/// past `stop_after`, and never follows a fragment cycle (those are refused later by validation).
pub fn count_aliases(doc: &ExecutableDocument, stop_after: usize) -> usize {
    let mut n = 0;
    let mut stack = HashSet::new();
    let sets: Vec<&SelectionSet> = match &doc.operations {
        DocumentOperations::Single(op) => vec![&op.node.selection_set.node],
        DocumentOperations::Multiple(ops) => {
            ops.values().map(|op| &op.node.selection_set.node).collect()
        }
    };
    for set in sets {
        walk(doc, set, &mut n, &mut stack, stop_after);
    }
    n
}

fn walk<'a>(
    doc: &'a ExecutableDocument,
    set: &'a SelectionSet,
    n: &mut usize,
    stack: &mut HashSet<&'a str>,
    stop_after: usize,
) {
    for item in &set.items {
        if *n > stop_after {
            return;
        }
        match &item.node {
            Selection::Field(f) => {
                if f.node.alias.is_some() {
                    *n += 1;
                }
                walk(doc, &f.node.selection_set.node, n, stack, stop_after);
            }
            Selection::InlineFragment(f) => {
                walk(doc, &f.node.selection_set.node, n, stack, stop_after)
            }
            Selection::FragmentSpread(s) => {
                let name = s.node.fragment_name.node.as_str();
                if let Some(frag) = doc.fragments.get(&s.node.fragment_name.node)
                    && stack.insert(name)
                {
                    walk(doc, &frag.node.selection_set.node, n, stack, stop_after);
                    stack.remove(name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(q: &str) -> usize {
        count_aliases(&async_graphql::parser::parse_query(q).unwrap(), 1000)
    }

    #[test]
    fn aliases_in_fragments_count_once_per_spread() {
        assert_eq!(count("{ a: me { id } b: me { id } }"), 2);
        assert_eq!(
            count("{ me { x: id } ...F ...F } fragment F on Query { y: me { id } }"),
            3
        );
        assert_eq!(count("{ ... on Query { a: me { id } } }"), 1);
    }

    #[test]
    fn fragment_cycles_do_not_hang() {
        assert_eq!(
            count(
                "{ ...A } fragment A on Query { a: me { id } ...B } fragment B on Query { ...A }"
            ),
            1
        );
    }
}

/// Whether the selected operations ask for `__schema` or `__type` (introspection). Root fields
/// only: those are the only places introspection can start.
pub fn uses_introspection(doc: &ExecutableDocument) -> bool {
    fn root<'a>(
        doc: &'a ExecutableDocument,
        set: &'a SelectionSet,
        stack: &mut HashSet<&'a str>,
    ) -> bool {
        set.items.iter().any(|item| match &item.node {
            Selection::Field(f) => matches!(f.node.name.node.as_str(), "__schema" | "__type"),
            Selection::InlineFragment(f) => root(doc, &f.node.selection_set.node, stack),
            Selection::FragmentSpread(s) => {
                let name = s.node.fragment_name.node.as_str();
                let found = doc
                    .fragments
                    .get(&s.node.fragment_name.node)
                    .is_some_and(|frag| {
                        stack.insert(name) && root(doc, &frag.node.selection_set.node, stack)
                    });
                stack.remove(name);
                found
            }
        })
    }
    let mut stack = HashSet::new();
    match &doc.operations {
        DocumentOperations::Single(op) => root(doc, &op.node.selection_set.node, &mut stack),
        DocumentOperations::Multiple(ops) => ops
            .values()
            .any(|op| root(doc, &op.node.selection_set.node, &mut stack)),
    }
}

#[cfg(test)]
mod introspection_tests {
    use super::*;

    fn uses(q: &str) -> bool {
        uses_introspection(&async_graphql::parser::parse_query(q).unwrap())
    }

    #[test]
    fn introspection_is_found_at_the_root_and_through_fragments() {
        assert!(uses("{ __schema { types { name } } }"));
        assert!(uses("{ ... on Query { __type(name: \"User\") { name } } }"));
        assert!(uses(
            "{ ...F } fragment F on Query { __schema { queryType { name } } }"
        ));
        assert!(!uses("{ __typename me { id } }"));
    }
}
