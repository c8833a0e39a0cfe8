use async_graphql::{Enum, ID, Object};
use chrono::{DateTime, Utc};
use minigate_media::{db::MediaRow, service::Service, url::Variant};
use serde::Serialize;

use crate::Viewer;

/// What a photo is for; the `purpose` form field of an upload, in lower case.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "minigate_media::Purpose")]
pub enum MediaPurpose {
    Accident,
    Damage,
    Invoice,
    Plate,
    Certificate,
    Inspection,
    Audit,
    IncomeScreenshot,
    Avatar,
}

/// A photo as a viewer who may see it sees it. URLs are signed and expire: fetch the object again
/// for fresh ones rather than storing them.
pub struct Media {
    pub row: MediaRow,
    /// Set when the viewer may see the original and what the photo claims.
    pub evidence: bool,
    pub service: Service,
}

impl Media {
    pub fn new(row: MediaRow, v: &Viewer, service: Service) -> Self {
        let evidence = super::may_see_evidence(v, &row);
        Self {
            row,
            evidence,
            service,
        }
    }
}

#[Object]
impl Media {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    async fn purpose(&self) -> Option<MediaPurpose> {
        self.row.purpose().map(MediaPurpose::from)
    }
    /// `READY` once the variants exist (only then can a report reference it).
    async fn status(&self) -> &str {
        &self.row.status
    }
    /// Pixel size of the photo as it is viewed (EXIF orientation applied).
    async fn width(&self) -> i32 {
        self.row.width
    }
    async fn height(&self) -> i32 {
        self.row.height
    }
    /// Long edge at most 1,600 px, JPEG without any metadata.
    async fn display_url(&self) -> String {
        self.service.url(self.row.id, Variant::Display)
    }
    /// Long edge at most 320 px.
    async fn thumbnail_url(&self) -> String {
        self.service.url(self.row.id, Variant::Thumbnail)
    }
    /// When the server had the whole file.
    async fn received_at(&self) -> DateTime<Utc> {
        self.row.received_at
    }
    /// The original and what the file claims, for staff and operators; null for anyone else.
    async fn evidence(&self) -> Option<MediaEvidence<'_>> {
        self.evidence.then_some(MediaEvidence(self))
    }
}

/// The evidence record: the original as received and what its EXIF claims. Claims are what the
/// phone wrote into the file, not facts: anyone can edit EXIF.
pub struct MediaEvidence<'a>(&'a Media);

#[Object]
impl MediaEvidence<'_> {
    /// The original bytes as uploaded (EXIF included).
    async fn original_url(&self) -> String {
        self.0.service.url(self.0.row.id, Variant::Original)
    }
    /// SHA-256 of the original, lowercase hex.
    async fn sha256(&self) -> &str {
        &self.0.row.original_sha256
    }
    async fn bytes(&self) -> String {
        self.0.row.original_bytes.to_string()
    }
    /// `jpeg`, `png` or `webp`.
    async fn format(&self) -> &str {
        &self.0.row.format
    }
    async fn uploader_id(&self) -> ID {
        ID(self.0.row.owner_id.to_string())
    }
    /// EXIF `DateTimeOriginal`, ISO 8601, with the offset when the phone wrote one.
    async fn claimed_taken_at(&self) -> Option<&str> {
        self.0.row.claimed_taken_at.as_deref()
    }
    async fn claimed_latitude(&self) -> Option<f64> {
        self.0.row.claimed_latitude
    }
    async fn claimed_longitude(&self) -> Option<f64> {
        self.0.row.claimed_longitude
    }
    async fn claimed_camera(&self) -> Option<&str> {
        self.0.row.claimed_camera.as_deref()
    }
    /// The file had an EXIF block that could not be read (it claims nothing).
    async fn exif_unreadable(&self) -> bool {
        self.0.row.exif_unreadable
    }
}

/// The answer to `POST /media` (the `data` string `wx.uploadFile` hands the mini-program).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadAnswer {
    pub id: String,
    pub status: String,
    pub purpose: String,
    pub width: i32,
    pub height: i32,
    pub display_url: String,
    pub thumbnail_url: String,
    pub received_at: DateTime<Utc>,
}

impl UploadAnswer {
    pub fn new(service: &Service, row: &MediaRow) -> Self {
        Self {
            id: row.id.to_string(),
            status: row.status.clone(),
            purpose: row.purpose.clone(),
            width: row.width,
            height: row.height,
            display_url: service.url(row.id, Variant::Display),
            thumbnail_url: service.url(row.id, Variant::Thumbnail),
            received_at: row.received_at,
        }
    }
}
