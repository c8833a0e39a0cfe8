use poem::{Response, http::StatusCode};

/// A GraphQL-shaped error body, for refusals that happen before a document is executed.
pub fn error_body(status: StatusCode, content_type: &str, code: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    });
    Response::builder()
        .status(status)
        .content_type(content_type)
        .body(body.to_string())
}
