//! The media tables: one record per upload, one row per stored blob.

use chrono::{DateTime, Utc};
use minigate_store::{self as store, Conn, Id};

use crate::{Error, Result, purpose::Purpose};

/// One upload, as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MediaRow {
    pub id: Id,
    pub tenant_id: Id,
    pub owner_id: Id,
    pub branch_id: Option<Id>,
    pub purpose: String,
    pub status: String,
    pub format: String,
    pub original_sha256: String,
    pub original_bytes: i64,
    pub width: i32,
    pub height: i32,
    pub display_sha256: String,
    pub display_width: i32,
    pub display_height: i32,
    pub thumbnail_sha256: String,
    pub thumbnail_width: i32,
    pub thumbnail_height: i32,
    pub received_at: DateTime<Utc>,
    pub claimed_taken_at: Option<String>,
    pub claimed_latitude: Option<f64>,
    pub claimed_longitude: Option<f64>,
    pub claimed_camera: Option<String>,
    pub exif_unreadable: bool,
    pub created_at: DateTime<Utc>,
}

impl MediaRow {
    pub fn purpose(&self) -> Option<Purpose> {
        self.purpose.parse().ok()
    }

    pub fn is_ready(&self) -> bool {
        self.status == "READY"
    }
}

/// `select <every column> from media <tail>`, as one literal.
macro_rules! select_media {
    ($tail:literal) => {
        concat!(
            "select id, tenant_id, owner_id, branch_id, purpose, status, format, original_sha256,
                original_bytes, width, height, display_sha256, display_width, display_height,
                thumbnail_sha256, thumbnail_width, thumbnail_height, received_at, claimed_taken_at,
                claimed_latitude, claimed_longitude, claimed_camera, exif_unreadable, created_at
             from media ",
            $tail
        )
    };
}

/// Writes a new record; `row.created_at` is ignored (the database's clock sets it).
pub async fn insert_media(c: &mut Conn, row: &MediaRow) -> Result<()> {
    store::execute!(
        c,
        "insert into media (id, tenant_id, owner_id, branch_id, purpose, status, format,
             original_sha256, original_bytes, width, height, display_sha256, display_width,
             display_height, thumbnail_sha256, thumbnail_width, thumbnail_height, received_at,
             claimed_taken_at, claimed_latitude, claimed_longitude, claimed_camera, exif_unreadable)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
             $19, $20, $21, $22, $23)",
        row.id,
        row.tenant_id,
        row.owner_id,
        row.branch_id,
        &row.purpose,
        &row.status,
        &row.format,
        &row.original_sha256,
        row.original_bytes,
        row.width,
        row.height,
        &row.display_sha256,
        row.display_width,
        row.display_height,
        &row.thumbnail_sha256,
        row.thumbnail_width,
        row.thumbnail_height,
        row.received_at,
        &row.claimed_taken_at,
        row.claimed_latitude,
        row.claimed_longitude,
        &row.claimed_camera,
        row.exif_unreadable
    )?;
    Ok(())
}

/// The record `id` of `tenant`, if any.
pub async fn find_media(c: &mut Conn, tenant_id: Id, id: Id) -> Result<Option<MediaRow>> {
    Ok(store::fetch_optional!(
        c,
        MediaRow,
        select_media!("where id = $1 and tenant_id = $2"),
        id,
        tenant_id
    )?)
}

/// The records of `ids` in `tenant` (the photos of a page of reports, in one query).
pub async fn media_by_ids(c: &mut Conn, tenant_id: Id, ids: Vec<Id>) -> Result<Vec<MediaRow>> {
    Ok(store::fetch_all!(
        c,
        MediaRow,
        select_media!("where id = any($1) and tenant_id = $2"),
        store::List(ids),
        tenant_id
    )?)
}

/// The record `id`, whatever its tenant (serving a signed URL, which already proves access).
pub async fn find_media_any_tenant(c: &mut Conn, id: Id) -> Result<Option<MediaRow>> {
    Ok(store::fetch_optional!(
        c,
        MediaRow,
        select_media!("where id = $1"),
        id
    )?)
}

/// A processed earlier upload of the same bytes (any owner, any tenant): its variants and claims
/// are what processing these bytes again would give.
pub async fn find_processed_original(c: &mut Conn, sha256: &str) -> Result<Option<MediaRow>> {
    Ok(store::fetch_optional!(
        c,
        MediaRow,
        select_media!("where original_sha256 = $1 and status = 'READY' limit 1"),
        sha256
    )?)
}

/// Records that blob storage holds `kind`/`sha256`; `true` when it was not recorded before.
pub async fn insert_blob(
    c: &mut Conn,
    kind: &str,
    sha256: &str,
    bytes: u64,
    content_type: &str,
) -> Result<bool> {
    let bytes = i64::try_from(bytes).map_err(|_| Error::TooLarge { limit: u64::MAX })?;
    let n = store::execute!(
        c,
        "insert into media_blob (sha256, kind, bytes, content_type) values ($1, $2, $3, $4)
         on conflict do nothing",
        sha256,
        kind,
        bytes,
        content_type
    )?;
    Ok(n > 0)
}

/// Whether blob storage is recorded as holding `kind`/`sha256`.
pub async fn blob_recorded(c: &mut Conn, kind: &str, sha256: &str) -> Result<bool> {
    Ok(store::fetch_scalar_optional!(
        c,
        i32,
        "select 1 from media_blob where kind = $1 and sha256 = $2",
        kind,
        sha256
    )?
    .is_some())
}

/// Bytes held in blob storage, by kind.
pub async fn stored_bytes(c: &mut Conn) -> Result<Vec<(String, i64)>> {
    Ok(store::fetch_all!(
        c,
        (String, i64),
        "select kind, coalesce(sum(bytes), 0) from media_blob group by kind order by kind"
    )?)
}
