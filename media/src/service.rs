//! The photo service the gateway and resolvers share: accept an upload, answer a signed URL.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use minigate_store::{Db, Id};
use tokio::sync::Semaphore;

use crate::{
    Error, Purpose, Result,
    db::{self, MediaRow},
    image::{self, Limits, Processed},
    intake::{self, Received},
    storage::{Blob, BlobKey, BlobKind, Storage},
    url::{UrlSigner, Variant},
};

/// Who uploads: the record's owner, tenant and branch.
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    pub tenant_id: Id,
    pub user_id: Id,
    pub branch_id: Option<Id>,
}

/// What the service is built from (the gateway fills it from its configuration).
pub struct Settings {
    /// Uploads larger than this are refused while they stream in.
    pub max_bytes: u64,
    pub limits: Limits,
    /// Photos decoded at once (one per core: decoding is CPU-bound).
    pub workers: usize,
    /// How long an upload waits for a worker before it is refused as busy.
    pub queue_wait: Duration,
    /// Where uploads are streamed before they are checked.
    pub temp_dir: PathBuf,
}

struct Inner {
    db: Db,
    storage: Storage,
    signer: UrlSigner,
    permits: Semaphore,
    settings: Settings,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct Service(Arc<Inner>);

impl Service {
    pub fn new(db: Db, storage: Storage, signer: UrlSigner, settings: Settings) -> Result<Self> {
        std::fs::create_dir_all(&settings.temp_dir)
            .map_err(|e| Error::Storage(format!("temporary folder: {}", e.kind())))?;
        Ok(Service(Arc::new(Inner {
            db,
            storage,
            signer,
            permits: Semaphore::new(settings.workers.max(1)),
            settings,
        })))
    }

    pub fn signer(&self) -> &UrlSigner {
        &self.0.signer
    }

    pub fn storage(&self) -> &Storage {
        &self.0.storage
    }

    pub fn max_bytes(&self) -> u64 {
        self.0.settings.max_bytes
    }

    /// Streams an upload body to a temporary file (hashed, under the size limit).
    pub async fn receive<R: tokio::io::AsyncRead + Unpin>(&self, body: R) -> Result<Received> {
        intake::receive(body, &self.0.settings.temp_dir, self.0.settings.max_bytes).await
    }

    /// Checks, processes and stores a received upload as a new record of `owner`. The answer
    /// comes once the variants exist; a refused file leaves nothing behind.
    pub async fn accept(
        &self,
        owner: Owner,
        purpose: Purpose,
        upload: Received,
    ) -> Result<MediaRow> {
        let started = Instant::now();
        let result = self.accept_inner(owner, purpose, &upload).await;
        let outcome = match &result {
            Ok((_, true)) => "deduplicated",
            Ok((_, false)) => "stored",
            Err(e) => e.code(),
        };
        metrics::counter!("minigate_media_uploads_total", "purpose" => purpose.as_str(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("minigate_media_processing_seconds", "purpose" => purpose.as_str())
            .record(started.elapsed().as_secs_f64());
        drop(upload);
        result.map(|(row, _)| row)
    }

    async fn accept_inner(
        &self,
        owner: Owner,
        purpose: Purpose,
        upload: &Received,
    ) -> Result<(MediaRow, bool)> {
        let inner = &self.0;
        let mut c = inner.db.conn().await?;
        // The same bytes again (a retry over a weak link, a photo shared twice): what processing
        // would give is known, so only a new record with its own owner is written.
        if let Some(prev) = db::find_processed_original(&mut c, &upload.sha256).await? {
            let row = MediaRow {
                id: Id::new(),
                tenant_id: owner.tenant_id,
                owner_id: owner.user_id,
                branch_id: owner.branch_id,
                purpose: purpose.as_str().to_owned(),
                received_at: upload.received_at,
                created_at: Utc::now(),
                ..prev
            };
            db::insert_media(&mut c, &row).await?;
            return Ok((row, true));
        }
        drop(c);

        let processed = self.process(upload.file.path()).await?;
        let display = BlobKey::of_bytes(BlobKind::Display, &processed.display.bytes);
        let thumbnail = BlobKey::of_bytes(BlobKind::Thumbnail, &processed.thumbnail.bytes);
        let display_len = len(&processed.display.bytes);
        let thumbnail_len = len(&processed.thumbnail.bytes);
        let original_type = processed.format.content_type();
        let s = &inner.storage;
        s.put_file(
            &BlobKey::new(BlobKind::Original, &upload.sha256)?,
            upload.file.path(),
            &upload.sha256,
            original_type,
        )
        .await?;
        s.put_bytes(&display, processed.display.bytes, "image/jpeg")
            .await?;
        s.put_bytes(&thumbnail, processed.thumbnail.bytes, "image/jpeg")
            .await?;

        let claims = processed.claims;
        let row = MediaRow {
            id: Id::new(),
            tenant_id: owner.tenant_id,
            owner_id: owner.user_id,
            branch_id: owner.branch_id,
            purpose: purpose.as_str().to_owned(),
            status: "READY".into(),
            format: processed.format.as_str().to_owned(),
            original_sha256: upload.sha256.clone(),
            original_bytes: i64::try_from(upload.bytes).unwrap_or(i64::MAX),
            width: px(processed.width),
            height: px(processed.height),
            display_sha256: display.sha256_hex().to_owned(),
            display_width: px(processed.display.width),
            display_height: px(processed.display.height),
            thumbnail_sha256: thumbnail.sha256_hex().to_owned(),
            thumbnail_width: px(processed.thumbnail.width),
            thumbnail_height: px(processed.thumbnail.height),
            received_at: upload.received_at,
            claimed_taken_at: claims.taken_at.map(|t| t.to_string()),
            claimed_latitude: claims.latitude,
            claimed_longitude: claims.longitude,
            claimed_camera: claims.camera,
            exif_unreadable: claims.exif_unreadable,
            created_at: Utc::now(),
        };
        let mut tx = inner.db.begin().await?;
        let stored = [
            (
                "original",
                upload.sha256.as_str(),
                upload.bytes,
                original_type,
            ),
            ("display", display.sha256_hex(), display_len, "image/jpeg"),
            (
                "thumbnail",
                thumbnail.sha256_hex(),
                thumbnail_len,
                "image/jpeg",
            ),
        ];
        let mut new_bytes = Vec::new();
        for (kind, sha, bytes, ty) in stored {
            if db::insert_blob(&mut tx, kind, sha, bytes, ty).await? {
                new_bytes.push((kind, bytes));
            }
        }
        db::insert_media(&mut tx, &row).await?;
        tx.commit().await?;
        for (kind, bytes) in new_bytes {
            metrics::gauge!("minigate_media_stored_bytes", "kind" => kind).increment(to_f64(bytes));
        }
        Ok((row, false))
    }

    /// Decodes and encodes off the async runtime, at most one photo per worker at a time.
    async fn process(&self, path: &Path) -> Result<Processed> {
        let inner = &self.0;
        let permit = tokio::time::timeout(inner.settings.queue_wait, inner.permits.acquire())
            .await
            .map_err(|_| Error::Busy)?
            .map_err(|_| Error::Busy)?;
        let path = path.to_owned();
        let limits = inner.settings.limits;
        let done = tokio::task::spawn_blocking(move || image::process(&path, &limits)).await;
        drop(permit);
        match done {
            Ok(r) => r,
            Err(e) => Err(Error::Corrupt(format!("processing failed: {e}"))),
        }
    }

    /// The bytes behind a signed URL: checks the signature and time, then finds the record and
    /// opens its blob.
    pub async fn open(
        &self,
        id: Id,
        variant: Variant,
        expires: i64,
        sig: &str,
    ) -> Result<(MediaRow, Blob)> {
        let inner = &self.0;
        inner
            .signer
            .verify(id, variant, expires, sig, Utc::now().timestamp())?;
        let mut c = inner.db.conn().await?;
        let row = db::find_media_any_tenant(&mut c, id)
            .await?
            .ok_or(Error::NotFound)?;
        drop(c);
        let (kind, sha) = match variant {
            Variant::Display => (BlobKind::Display, &row.display_sha256),
            Variant::Thumbnail => (BlobKind::Thumbnail, &row.thumbnail_sha256),
            Variant::Original => (BlobKind::Original, &row.original_sha256),
        };
        let blob = inner
            .storage
            .get(&BlobKey::new(kind, sha)?)
            .await?
            .ok_or_else(|| Error::Storage("a recorded blob is missing".into()))?;
        Ok((row, blob))
    }

    /// Sets the `minigate_media_stored_bytes` gauge from what the database records (at start;
    /// uploads add to it as they store new bytes).
    pub async fn publish_stored_bytes(&self) -> Result<()> {
        let mut c = self.0.db.conn().await?;
        for (kind, bytes) in db::stored_bytes(&mut c).await? {
            let bytes = u64::try_from(bytes).unwrap_or(0);
            metrics::gauge!("minigate_media_stored_bytes", "kind" => kind).set(to_f64(bytes));
        }
        Ok(())
    }

    /// A signed URL for `variant` of `id`, valid from now.
    pub fn url(&self, id: Id, variant: Variant) -> String {
        self.0.signer.sign(id, variant, Utc::now().timestamp())
    }
}

/// A byte count as a metric value (exact below 2^53, which no photo store reaches).
fn to_f64(n: u64) -> f64 {
    let high = u32::try_from(n >> 32).unwrap_or(u32::MAX);
    let low = u32::try_from(n & 0xFFFF_FFFF).unwrap_or(0);
    f64::from(high) * 4_294_967_296.0 + f64::from(low)
}

fn px(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn len(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}
