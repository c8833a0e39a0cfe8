//! `POST /media`: a photo upload in the shape `wx.uploadFile` sends (multipart, the file in field
//! `file`, form fields beside it, a bearer token), and `GET /media/{id}/{variant}`: the bytes
//! behind a signed URL.

use std::sync::Arc;

use minigate_media::{Purpose, intake::Received, service::Owner, url::Variant};
use minigate_resolvers::media::UploadAnswer;
use poem::{
    Body, Request, Response,
    http::{StatusCode, header},
    web::{Data, Multipart, Path, Query, RemoteAddr},
};
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::{
    error_body,
    graphql::{self, JSON},
};
use crate::app::State;

/// Form fields are a few words; the file is the only large part.
const FIELD_LIMIT: u64 = 1024;

fn refuse(e: &minigate_media::Error) -> Response {
    let status = match e {
        minigate_media::Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        minigate_media::Error::UnsupportedFormat(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        minigate_media::Error::NotFound => StatusCode::NOT_FOUND,
        minigate_media::Error::UrlExpired | minigate_media::Error::UrlInvalid => {
            StatusCode::FORBIDDEN
        }
        minigate_media::Error::Busy | minigate_media::Error::Storage(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        minigate_media::Error::Store(s) if s.code() == "DATABASE_UNAVAILABLE" => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        minigate_media::Error::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    if status.is_server_error() {
        tracing::error!(code = e.code(), error = %e, "media request failed");
    }
    let message = if e.is_client_error() {
        e.to_string()
    } else {
        "photo storage unavailable, try again".to_owned()
    };
    error_body(status, JSON, e.code(), &message)
}

fn unauthorized(code: &str, message: &str) -> Response {
    let mut r = error_body(StatusCode::UNAUTHORIZED, JSON, code, message);
    if let Ok(v) = "Bearer error=\"invalid_token\"".parse() {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

#[poem::handler]
pub async fn upload(
    req: &Request,
    form: poem::Result<Multipart>,
    state: Data<&Arc<State>>,
    remote: &RemoteAddr,
) -> Response {
    let Some(media) = &state.media else {
        return error_body(
            StatusCode::SERVICE_UNAVAILABLE,
            JSON,
            "MEDIA_STORAGE_UNAVAILABLE",
            "photo uploads are not configured",
        );
    };
    // The same budgets as GraphQL requests: an upload is a request like any other.
    let limiter = &*state.deps.limiter;
    let limits = &state.config.limits;
    if let Some(ip) = graphql::client_ip(req, &state, remote)
        && let Err(r) = graphql::limit(
            limiter,
            format!("ip:{ip}"),
            limits.per_ip_per_minute,
            graphql::Media::Json,
        )
        .await
    {
        return r;
    }
    let viewer = match graphql::authenticate(req, &state) {
        Ok(Some(v)) => v,
        Ok(None) => {
            return unauthorized("UNAUTHENTICATED", "send a bearer access token");
        }
        Err(e) => return unauthorized(e.code(), &e.public_message()),
    };
    if let Err(r) = graphql::limit(
        limiter,
        format!("user:{}", viewer.user_id),
        limits.per_user_per_minute,
        graphql::Media::Json,
    )
    .await
    {
        return r;
    }
    let Ok(mut form) = form else {
        return error_body(
            StatusCode::BAD_REQUEST,
            JSON,
            "BAD_REQUEST",
            "send multipart/form-data with the photo in a part named file",
        );
    };
    let mut file: Option<Received> = None;
    let mut purpose: Option<String> = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) => {
                return error_body(
                    StatusCode::BAD_REQUEST,
                    JSON,
                    "BAD_REQUEST",
                    "the body is not multipart/form-data",
                );
            }
        };
        match field.name() {
            Some("file") if file.is_none() => match media.receive(field.into_async_read()).await {
                Ok(r) => file = Some(r),
                Err(e) => return refuse(&e),
            },
            Some("purpose") => {
                let mut text = String::new();
                if field
                    .into_async_read()
                    .take(FIELD_LIMIT)
                    .read_to_string(&mut text)
                    .await
                    .is_err()
                {
                    return refuse(&minigate_media::Error::PurposeInvalid(String::new()));
                }
                purpose = Some(text);
            }
            // Other form fields (a client's own bookkeeping) are read past, never kept.
            _ => {
                let mut sink = tokio::io::sink();
                let _ = tokio::io::copy(&mut field.into_async_read(), &mut sink).await;
            }
        }
    }
    let purpose = match purpose.as_deref().map(str::parse::<Purpose>) {
        Some(Ok(p)) => p,
        Some(Err(e)) => return refuse(&e),
        None => return refuse(&minigate_media::Error::PurposeInvalid("(none)".into())),
    };
    let Some(file) = file else {
        return refuse(&minigate_media::Error::Empty);
    };
    let owner = Owner {
        tenant_id: viewer.tenant_id,
        user_id: viewer.user_id,
        branch_id: viewer.branch_id,
    };
    match media.accept(owner, purpose, file).await {
        Ok(row) => {
            let answer = UploadAnswer::new(media, &row);
            Response::builder()
                .status(StatusCode::CREATED)
                .content_type(JSON)
                .body(serde_json::to_string(&answer).unwrap_or_default())
        }
        Err(e) => refuse(&e),
    }
}

#[derive(Deserialize)]
pub struct Signed {
    expires: i64,
    sig: String,
}

#[poem::handler]
pub async fn serve(
    Path((id, variant)): Path<(String, String)>,
    Query(q): Query<Signed>,
    state: Data<&Arc<State>>,
) -> Response {
    let Some(media) = &state.media else {
        return refuse(&minigate_media::Error::NotFound);
    };
    let (Ok(id), Ok(variant)) = (id.parse(), variant.parse::<Variant>()) else {
        return refuse(&minigate_media::Error::UrlInvalid);
    };
    match media.open(id, variant, q.expires, &q.sig).await {
        Ok((row, blob)) => {
            let remaining = (q.expires - chrono::Utc::now().timestamp()).max(0);
            let sha = match variant {
                Variant::Display => &row.display_sha256,
                Variant::Thumbnail => &row.thumbnail_sha256,
                Variant::Original => &row.original_sha256,
            };
            let content_type = match variant {
                Variant::Original => row
                    .format
                    .parse::<minigate_media::image::Format>()
                    .map_or("application/octet-stream", |f| f.content_type()),
                Variant::Display | Variant::Thumbnail => "image/jpeg",
            };
            Response::builder()
                .status(StatusCode::OK)
                .content_type(content_type)
                .header(header::CONTENT_LENGTH, blob.len())
                .header(
                    header::CACHE_CONTROL,
                    format!("private, max-age={remaining}, immutable"),
                )
                .header(header::ETAG, format!("\"{sha}\""))
                .header("x-content-type-options", "nosniff")
                .body(Body::from_bytes_stream(blob.into_stream()))
        }
        Err(e) => refuse(&e),
    }
}
