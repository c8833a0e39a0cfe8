use std::sync::Arc;

use async_graphql::{
    ErrorExtensionValues, Response, ServerError, ValidationResult, Value,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextRequest, NextSubscribe, NextValidation,
    },
    futures_util::{StreamExt, stream::BoxStream},
};

/// Codes that mean the document was refused before execution: the HTTP transport answers 400
/// for them under `application/graphql-response+json`.
pub const REQUEST_ERROR_CODES: &[&str] = &[
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "QUERY_TOO_DEEP",
    "QUERY_TOO_COMPLEX",
    "QUERY_TOO_MANY_ALIASES",
];

const SCHEMA_CODES: &[(&str, &str)] = &[
    (
        "GRAPHQL_PARSE_FAILED",
        "The document is not valid GraphQL syntax.",
    ),
    (
        "GRAPHQL_VALIDATION_FAILED",
        "The document does not match the schema (unknown field, wrong argument type, …).",
    ),
    ("QUERY_TOO_DEEP", "The document nests deeper than allowed."),
    (
        "QUERY_TOO_COMPLEX",
        "The document asks for more than the complexity limit allows.",
    ),
    (
        "QUERY_TOO_MANY_ALIASES",
        "The document uses more aliases than allowed.",
    ),
];

/// Every code a client can meet from the schema and its resolvers, sorted by code.
pub fn all_codes() -> Vec<(&'static str, &'static str)> {
    let mut all: Vec<_> = SCHEMA_CODES
        .iter()
        .chain(minigate_resolvers::error::CODES)
        .chain(minigate_resolvers::push_codes())
        .chain(minigate_resolvers::payment_codes())
        .chain(minigate_resolvers::media_codes())
        .copied()
        .collect();
    all.sort_by_key(|(c, _)| *c);
    all.dedup_by_key(|(c, _)| *c);
    all
}

pub(crate) fn with_code(mut e: ServerError, code: &str) -> ServerError {
    let ext = e
        .extensions
        .get_or_insert_with(ErrorExtensionValues::default);
    if ext.get("code").is_none() {
        ext.set("code", code);
    }
    e
}

fn has_code(e: &ServerError) -> bool {
    e.extensions
        .as_ref()
        .is_some_and(|x| x.get("code").is_some())
}

/// Gives every error a stable `extensions.code` and hides internal failures behind
/// `internal error` (logged with their source here, once).
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension)
    }
}

struct ErrorCodesExtension;

#[async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| {
                    let code = validation_code(&e.message);
                    with_code(e, code)
                })
                .collect()
        })
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(
            ctx,
            stream
                .map(|mut response| {
                    for e in &mut response.errors {
                        assign(e);
                    }
                    response
                })
                .boxed(),
        )
    }

    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        for e in &mut response.errors {
            assign(e);
        }
        response
    }
}

fn validation_code(message: &str) -> &'static str {
    if message.starts_with("Query is nested too deep") {
        "QUERY_TOO_DEEP"
    } else if message.starts_with("Query is too complex") {
        "QUERY_TOO_COMPLEX"
    } else {
        "GRAPHQL_VALIDATION_FAILED"
    }
}

/// Gives every error of a response its stable code (for transports whose schema runs without
/// the [`ErrorCodes`] extension).
pub fn assign_codes(response: &mut Response) {
    for e in &mut response.errors {
        assign(e);
    }
}

fn assign(e: &mut ServerError) {
    if has_code(e) {
        return;
    }
    if let Some(c) = e
        .source
        .as_deref()
        .and_then(minigate_resolvers::error::classify)
    {
        if c.internal {
            tracing::error!(code = c.code, error = %e.message, path = ?e.path, "request failed");
        }
        e.message = c.message;
        let ext = e
            .extensions
            .get_or_insert_with(ErrorExtensionValues::default);
        ext.set("code", c.code);
        if let Some(f) = c.field {
            ext.set("field", f);
        }
        if let Some(s) = c.retry_after_secs {
            ext.set("retryAfter", Value::from(s));
        }
        return;
    }
    let ext_code = if e.path.is_empty() {
        // Refused before execution: validation, limits, an unknown operation name.
        validation_code(&e.message)
    } else if e.message.starts_with("Invalid value for argument")
        || e.message.starts_with("Failed to parse")
    {
        "INVALID_INPUT"
    } else {
        tracing::error!(error = %e.message, path = ?e.path, "unclassified resolver error");
        e.message = "internal error".to_owned();
        "INTERNAL"
    };
    let ext = e
        .extensions
        .get_or_insert_with(ErrorExtensionValues::default);
    ext.set("code", ext_code);
}
