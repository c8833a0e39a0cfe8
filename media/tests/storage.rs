#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Blob storage, each behaviour on a local folder and on a real S3-compatible server.
//!
//! The S3 variant runs when `S3_URL` is set (`scripts/services.sh` starts a server that checks
//! SigV4 signatures, with the credentials below); CI must set it. Each test gets its own bucket,
//! made through a signed PUT and deleted at the end.

use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use minigate_media::{
    Error,
    storage::{BlobKey, BlobKind, S3Bucket, S3Config, Storage, sha256_hex},
};
use secrecy::SecretString;

/// The test server's credentials (`scripts/services.sh`), unless the environment says otherwise.
const ACCESS_KEY_ID: &str = "minigate";
const SECRET_ACCESS_KEY: &str = "minigate-test-secret";

/// Runs a test body on a fresh local folder and, when `S3_URL` is set, on a fresh bucket.
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn local() {
                let dir = tempfile::tempdir().unwrap();
                let storage = Storage::local(dir.path().join("media")).unwrap();
                ($body)(storage).await;
            }

            #[tokio::test]
            async fn s3() {
                let Some(bucket) = fresh_bucket().await else {
                    return;
                };
                ($body)(Storage::S3(bucket.clone())).await;
                bucket.delete_bucket_and_objects().await.unwrap();
            }
        }
    };
}

fn s3_url() -> Option<String> {
    match std::env::var("S3_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the S3 variant: set S3_URL"
            );
            eprintln!("S3_URL not set: S3 run skipped");
            None
        }
    }
}

fn s3_config(endpoint: &str, bucket: &str) -> S3Config {
    S3Config {
        endpoint: endpoint.to_owned(),
        bucket: bucket.to_owned(),
        region: "us-east-1".into(),
        access_key_id: std::env::var("S3_ACCESS_KEY_ID").unwrap_or_else(|_| ACCESS_KEY_ID.into()),
        secret_access_key: SecretString::from(
            std::env::var("S3_SECRET_ACCESS_KEY").unwrap_or_else(|_| SECRET_ACCESS_KEY.into()),
        ),
        timeout: Duration::from_secs(10),
    }
}

fn s3_bucket(cfg: S3Config) -> S3Bucket {
    match Storage::s3(cfg).unwrap() {
        Storage::S3(bucket) => bucket,
        Storage::Local(_) => unreachable!(),
    }
}

/// A new empty bucket on the test server, or `None` when there is no server (outside CI).
async fn fresh_bucket() -> Option<S3Bucket> {
    let url = s3_url()?;
    let name = format!("minigate-test-{}", uuid::Uuid::new_v4().simple());
    let bucket = s3_bucket(s3_config(&url, &name));
    bucket.create_bucket().await.unwrap();
    Some(bucket)
}

fn key(kind: BlobKind, bytes: &[u8]) -> BlobKey {
    BlobKey::new(kind, &sha256_hex(bytes)).unwrap()
}

/// Deterministic bytes that do not compress.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn read_all(storage: &Storage, key: &BlobKey) -> Option<Vec<u8>> {
    let blob = storage.get(key).await.unwrap()?;
    Some(blob.read_to_end(64 << 20).await.unwrap())
}

fn assert_storage_error(result: Result<impl std::fmt::Debug, Error>, says: &str) {
    match result {
        Err(Error::Storage(message)) => {
            assert!(message.contains(says), "{message:?} should say {says:?}")
        }
        other => panic!("expected a storage error saying {says:?}, got {other:?}"),
    }
}

both!(
    bytes_put_are_the_bytes_got_back,
    |storage: Storage| async move {
        let bytes = b"a display variant".to_vec();
        let k = key(BlobKind::Display, &bytes);
        storage
            .put_bytes(&k, bytes.clone(), "image/jpeg")
            .await
            .unwrap();
        let blob = storage.get(&k).await.unwrap().unwrap();
        assert_eq!(blob.len(), u64::try_from(bytes.len()).unwrap());
        let streamed: Vec<u8> = blob
            .into_stream()
            .map_ok(|chunk| chunk.to_vec())
            .try_concat()
            .await
            .unwrap();
        assert_eq!(streamed, bytes);
    }
);

both!(
    a_missing_key_is_none_and_does_not_exist,
    |storage: Storage| async move {
        let k = key(BlobKind::Original, b"never stored");
        assert!(!storage.exists(&k).await.unwrap());
        assert!(storage.get(&k).await.unwrap().is_none());
        // The same hash under another kind is another blob.
        storage
            .put_bytes(&k, b"never stored".to_vec(), "image/jpeg")
            .await
            .unwrap();
        assert!(storage.exists(&k).await.unwrap());
        let thumbnail = BlobKey::new(BlobKind::Thumbnail, k.sha256_hex()).unwrap();
        assert!(!storage.exists(&thumbnail).await.unwrap());
        assert!(storage.get(&thumbnail).await.unwrap().is_none());
    }
);

both!(
    the_same_key_twice_is_stored_once,
    |storage: Storage| async move {
        let dir = tempfile::tempdir().unwrap();
        let first = b"the first upload".to_vec();
        let k = key(BlobKind::Original, &first);
        let path = dir.path().join("upload");
        std::fs::write(&path, &first).unwrap();
        storage
            .put_file(&k, &path, &sha256_hex(&first), "image/jpeg")
            .await
            .unwrap();
        storage
            .put_file(&k, &path, &sha256_hex(&first), "image/jpeg")
            .await
            .unwrap();
        storage
            .put_bytes(&k, first.clone(), "image/jpeg")
            .await
            .unwrap();
        // An existing key is not written again: other bytes under it (which content addressing
        // never produces) would leave the stored ones alone.
        let other = b"other bytes".to_vec();
        std::fs::write(&path, &other).unwrap();
        storage
            .put_file(&k, &path, &sha256_hex(&other), "image/jpeg")
            .await
            .unwrap();
        storage.put_bytes(&k, other, "image/jpeg").await.unwrap();
        assert_eq!(read_all(&storage, &k).await.unwrap(), first);
        // The caller's file is left where it was.
        assert!(path.exists());
    }
);

both!(
    concurrent_puts_of_the_same_key_all_succeed_with_the_same_bytes,
    |storage: Storage| async move {
        let bytes = noise(256 * 1024, 7);
        let k = key(BlobKind::Original, &bytes);
        let puts: Vec<_> = (0..8)
            .map(|_| {
                let (storage, k, bytes) = (storage.clone(), k.clone(), bytes.clone());
                tokio::spawn(async move { storage.put_bytes(&k, bytes, "image/png").await })
            })
            .collect();
        for put in puts {
            put.await.unwrap().unwrap();
        }
        assert_eq!(read_all(&storage, &k).await.unwrap(), bytes);
    }
);

both!(
    a_20_mib_original_streams_in_and_out_intact,
    |storage: Storage| async move {
        let dir = tempfile::tempdir().unwrap();
        let bytes = noise(20 << 20, 42);
        let hash = sha256_hex(&bytes);
        let path = dir.path().join("upload");
        std::fs::write(&path, &bytes).unwrap();
        drop(bytes);
        let k = BlobKey::new(BlobKind::Original, &hash).unwrap();
        storage
            .put_file(&k, &path, &hash, "image/jpeg")
            .await
            .unwrap();
        assert!(storage.exists(&k).await.unwrap());

        let mut blob = storage.get(&k).await.unwrap().unwrap();
        assert_eq!(blob.len(), 20 << 20);
        let mut hasher = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let (mut total, mut chunks, mut largest) = (0usize, 0usize, 0usize);
        while let Some(chunk) = blob.chunk().await.unwrap() {
            hasher.update(&chunk);
            total += chunk.len();
            chunks += 1;
            largest = largest.max(chunk.len());
        }
        assert_eq!(total, 20 << 20);
        let got: String = hasher
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, hash);
        // Streamed in pieces, never handed over whole.
        assert!(
            chunks > 1 && largest < 4 << 20,
            "{chunks} chunks, largest {largest}"
        );
    }
);

both!(
    a_file_whose_bytes_do_not_match_its_hash_is_refused_and_nothing_is_stored,
    |storage: Storage| async move {
        let dir = tempfile::tempdir().unwrap();
        let claimed = b"what the caller hashed".to_vec();
        let path = dir.path().join("upload");
        std::fs::write(&path, b"what is on disk").unwrap();
        let k = key(BlobKind::Original, &claimed);
        let result = storage
            .put_file(&k, &path, &sha256_hex(&claimed), "image/jpeg")
            .await;
        assert!(matches!(result, Err(Error::Storage(_))), "{result:?}");
        assert!(!storage.exists(&k).await.unwrap());
        assert!(storage.get(&k).await.unwrap().is_none());
    }
);

both!(
    check_passes_on_reachable_storage,
    |storage: Storage| async move {
        storage.check().await.unwrap();
    }
);

#[tokio::test]
async fn a_local_blob_is_a_file_laid_out_by_hash_with_no_temporary_files_left() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("media");
    let storage = Storage::local(root.clone()).unwrap();
    let bytes = b"thumbnail".to_vec();
    let hash = sha256_hex(&bytes);
    let k = BlobKey::new(BlobKind::Thumbnail, &hash).unwrap();
    storage
        .put_bytes(&k, bytes.clone(), "image/jpeg")
        .await
        .unwrap();
    storage
        .put_bytes(&k, bytes.clone(), "image/jpeg")
        .await
        .unwrap();
    let folder = root.join("thumbnail").join(&hash[..2]).join(&hash[2..4]);
    let names: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec![hash.clone()]);
    assert_eq!(std::fs::read(folder.join(&hash)).unwrap(), bytes);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(folder.join(&hash))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "blobs are private: {mode:o}");
    }

    // A refused write leaves no temporary file behind either.
    let path = dir.path().join("upload");
    std::fs::write(&path, b"x").unwrap();
    let other = BlobKey::new(
        BlobKind::Thumbnail,
        &format!("{}{}", &hash[..4], "0".repeat(60)),
    )
    .unwrap();
    assert!(
        storage
            .put_file(&other, &path, &hash, "image/jpeg")
            .await
            .is_err()
    );
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 1);
}

#[tokio::test]
async fn check_fails_when_the_local_folder_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("media");
    let storage = Storage::local(root.clone()).unwrap();
    std::fs::remove_dir(&root).unwrap();
    assert!(matches!(storage.check().await, Err(Error::Storage(_))));
}

#[tokio::test]
async fn a_wrong_secret_is_refused_by_the_server_as_access_denied() {
    let Some(bucket) = fresh_bucket().await else {
        return;
    };
    let url = s3_url().unwrap();
    let mut cfg = s3_config(&url, bucket.bucket());
    cfg.secret_access_key = SecretString::from("not-the-secret".to_owned());
    let wrong = Storage::s3(cfg).unwrap();
    let bytes = b"signed with the wrong secret".to_vec();
    let k = key(BlobKind::Original, &bytes);

    assert_storage_error(wrong.check().await, "access denied");
    assert_storage_error(wrong.exists(&k).await, "access denied");
    assert_storage_error(
        wrong.put_bytes(&k, bytes.clone(), "image/jpeg").await,
        "access denied",
    );
    assert_storage_error(wrong.get(&k).await, "access denied");
    let message = wrong.get(&k).await.unwrap_err().to_string();
    assert!(!message.contains("not-the-secret"));

    // Nothing got in, and the right secret still works.
    let right = Storage::S3(bucket.clone());
    assert!(!right.exists(&k).await.unwrap());
    right
        .put_bytes(&k, bytes.clone(), "image/jpeg")
        .await
        .unwrap();
    assert_storage_error(wrong.get(&k).await, "access denied");
    assert_eq!(read_all(&right, &k).await.unwrap(), bytes);
    bucket.delete_bucket_and_objects().await.unwrap();
}

#[tokio::test]
async fn a_bucket_that_does_not_exist_fails_the_check() {
    let Some(url) = s3_url() else {
        return;
    };
    let name = format!("minigate-missing-{}", uuid::Uuid::new_v4().simple());
    let storage = Storage::s3(s3_config(&url, &name)).unwrap();
    assert_storage_error(storage.check().await, "does not exist");
}

#[tokio::test]
async fn a_refused_connection_is_a_storage_error_at_once() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let storage = Storage::s3(s3_config(&format!("http://127.0.0.1:{port}"), "media")).unwrap();
    let k = key(BlobKind::Original, b"x");
    let started = Instant::now();
    assert_storage_error(storage.check().await, "unreachable");
    assert_storage_error(storage.exists(&k).await, "unreachable");
    assert_storage_error(storage.get(&k).await, "unreachable");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_quickly() {
    // Accepted by the kernel's backlog, never answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let mut cfg = s3_config(&endpoint, "media");
    cfg.timeout = Duration::from_millis(300);
    let storage = Storage::s3(cfg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upload");
    std::fs::write(&path, b"x").unwrap();
    let k = key(BlobKind::Original, b"x");

    let quick = |started: Instant| assert!(started.elapsed() < Duration::from_secs(3));
    let started = Instant::now();
    assert_storage_error(storage.check().await, "timed out");
    quick(started);
    let started = Instant::now();
    assert_storage_error(storage.exists(&k).await, "timed out");
    quick(started);
    let started = Instant::now();
    assert_storage_error(storage.get(&k).await, "timed out");
    quick(started);
    let started = Instant::now();
    assert_storage_error(
        storage
            .put_file(&k, &path, &sha256_hex(b"x"), "image/jpeg")
            .await,
        "timed out",
    );
    quick(started);
    drop(silent);
}

#[test]
fn blob_keys_refuse_anything_but_a_lowercase_sha256() {
    let hash = sha256_hex(b"x");
    assert!(BlobKey::new(BlobKind::Original, &hash).is_ok());
    for bad in [
        String::new(),
        hash[..63].to_owned(),
        format!("{hash}a"),
        hash.to_uppercase(),
        format!("{}zz", &hash[..62]),
        format!("../../{}", &hash[6..]),
        "../../../../etc/passwd".to_owned(),
    ] {
        assert!(
            matches!(
                BlobKey::new(BlobKind::Original, &bad),
                Err(Error::Storage(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn the_secret_never_shows_in_debug_output() {
    let cfg = s3_config("http://127.0.0.1:9", "media");
    let storage = Storage::s3(S3Config {
        secret_access_key: SecretString::from("hunter2-hunter2".to_owned()),
        ..cfg.clone()
    })
    .unwrap();
    assert!(!format!("{storage:?}").contains("hunter2"));
    assert!(!format!("{cfg:?}").contains(SECRET_ACCESS_KEY));
}
