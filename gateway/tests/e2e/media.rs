//! Photos: `POST /media` in the `wx.uploadFile` shape, signed URLs, evidence for staff only, and
//! who may attach a photo to a record. On SQLite with a local folder, and on PostgreSQL + Redis
//! with the local S3-compatible server.

use minigate_fakes::photos::{self, ExifSpec};
use minigate_media::{Purpose, url::Variant};
use minigate_resolvers::Role;
use serde_json::{Value, json};

use crate::support::TestApp;

/// A phone photo: 800×600 as stored, orientation 6 (so 600×800 as seen), GPS and capture time.
fn phone_photo() -> Vec<u8> {
    let jpeg = photos::jpeg(800, 600, &photos::red_corner(800, 600));
    photos::with_exif(&jpeg, &photos::tiff(&ExifSpec::phone()))
}

/// A second, different photo.
fn other_photo() -> Vec<u8> {
    photos::jpeg(640, 480, &photos::gradient(640, 480))
}

/// A bad upload: what it is, its bytes, its purpose, the status and code it must get.
type Case = (
    &'static str,
    Vec<u8>,
    Option<&'static str>,
    u16,
    &'static str,
);

impl TestApp {
    async fn fetch(&self, url: &str) -> (u16, Option<String>, Vec<u8>) {
        let r = self.http.get(url).send().await.unwrap();
        let status = r.status().as_u16();
        let ty = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, ty, r.bytes().await.unwrap().to_vec())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

const MEDIA: &str = "query($id: ID!) { media(id: $id) { id purpose status width height displayUrl thumbnailUrl
    evidence { originalUrl sha256 bytes format uploaderId claimedTakenAt claimedLatitude claimedLongitude claimedCamera exifUnreadable } } }";

both!(
    a_phone_photo_becomes_upright_stripped_variants_behind_signed_urls,
    |app: TestApp| async move {
        let t = app.tenant("acme").await;
        let b = app.branch(t, "SH").await;
        let driver = app.member(t, Role::Driver, Some(b)).await;
        let original = phone_photo();
        let up = app
            .upload_media(
                Some(&driver),
                original.clone(),
                "IMG_0001.JPG",
                Some("accident"),
            )
            .await;
        let id = up.id().to_owned();
        assert_eq!(up.json["status"], "READY");
        assert_eq!(up.json["purpose"], "accident");
        // Orientation 6: seen upright, the photo is 600 wide and 800 high.
        assert_eq!(
            (up.json["width"].as_i64(), up.json["height"].as_i64()),
            (Some(600), Some(800))
        );

        let (status, ty, display) = app.fetch(up.json["displayUrl"].as_str().unwrap()).await;
        assert_eq!(status, 200);
        assert_eq!(ty.as_deref(), Some("image/jpeg"));
        let (w, h, px) = photos::decode_jpeg(&display);
        assert_eq!((w, h), (600, 800));
        // The red corner was top-left as stored; turned 90° clockwise it is top-right.
        assert!(photos::near(
            photos::at(&px, w, w - 20, 20),
            photos::RED,
            40
        ));
        assert!(photos::near(photos::at(&px, w, 20, 20), photos::GREEN, 40));
        for variant in [
            &display[..],
            &app.fetch(up.json["thumbnailUrl"].as_str().unwrap()).await.2,
        ] {
            assert!(!contains(variant, b"Exif"), "a variant carries EXIF");
            assert!(!contains(variant, b"iPhone"), "a variant names the camera");
            assert!(
                !contains(variant, b"\xFF\xE1"),
                "a variant has an APP1 segment"
            );
        }
        let (_, _, thumb) = app.fetch(up.json["thumbnailUrl"].as_str().unwrap()).await;
        let (tw, th, _) = photos::decode_jpeg(&thumb);
        assert_eq!((tw, th), (240, 320));

        // The driver sees the photo but not the evidence; an operator sees both.
        let mine = app.gql(&driver, MEDIA, json!({ "id": id })).await;
        assert_eq!(mine.ok()["media"]["evidence"], Value::Null);
        let admin = app.member(t, Role::Admin, None).await;
        let seen = app.gql(&admin, MEDIA, json!({ "id": id })).await;
        let e = &seen.ok()["media"]["evidence"];
        assert_eq!(e["claimedTakenAt"], "2024-05-01T14:23:05+08:00");
        assert!((e["claimedLatitude"].as_f64().unwrap() + 31.2307).abs() < 1e-3);
        assert!((e["claimedLongitude"].as_f64().unwrap() + 121.47).abs() < 1e-3);
        assert_eq!(e["claimedCamera"], "Apple iPhone 15");
        assert_eq!(e["format"], "jpeg");
        assert_eq!(e["bytes"], original.len().to_string());
        // The original is kept as received, EXIF and all.
        let (status, ty, kept) = app.fetch(e["originalUrl"].as_str().unwrap()).await;
        assert_eq!((status, ty.as_deref()), (200, Some("image/jpeg")));
        assert_eq!(kept, original);
        assert_eq!(e["sha256"], minigate_media::storage::sha256_hex(&original));

        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("minigate_media_uploads_total")
                    && l.contains("outcome=\"stored\"")
                    && l.contains("purpose=\"accident\"")),
            "{metrics}"
        );
        // Metrics are per process, shared by the tests running beside this one: at least ours.
        let stored = metrics
            .lines()
            .find(|l| {
                l.starts_with("minigate_media_stored_bytes{") && l.contains("kind=\"original\"")
            })
            .and_then(|l| l.rsplit_once(' '))
            .and_then(|(_, v)| v.parse::<f64>().ok());
        assert!(stored.is_some_and(|v| v >= 1000.0), "{metrics}");
    }
);

both!(
    the_same_bytes_are_stored_once_but_every_upload_is_its_own_record,
    |app: TestApp| async move {
        let t = app.tenant("acme").await;
        let b = app.branch(t, "SH").await;
        let one = app.member(t, Role::Driver, Some(b)).await;
        let two = app.member(t, Role::Driver, Some(b)).await;
        let photo = phone_photo();
        let a = app
            .upload_media(Some(&one), photo.clone(), "a.jpg", Some("damage"))
            .await;
        let again = app
            .upload_media(Some(&one), photo.clone(), "a.jpg", Some("damage"))
            .await;
        let theirs = app
            .upload_media(Some(&two), photo.clone(), "b.jpg", Some("invoice"))
            .await;
        let ids = [a.id(), again.id(), theirs.id()];
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[0], ids[2]);
        assert_eq!(app.count("select count(*) from media").await, 3);
        assert_eq!(
            app.count("select count(*) from media_blob").await,
            3,
            "original, display, thumbnail once"
        );
        assert_eq!(
            app.count("select count(distinct owner_id) from media")
                .await,
            2
        );
        // Each owner sees their own record, never the other's.
        let q = "query($id: ID!) { media(id: $id) { id purpose } }";
        let mine = app.gql(&two, q, json!({ "id": theirs.id() })).await;
        assert_eq!(mine.ok()["media"]["purpose"], "INVOICE");
        let not_mine = app.gql(&two, q, json!({ "id": a.id() })).await;
        assert_eq!(not_mine.ok()["media"], Value::Null);
        // The display variant of the second record is the same bytes, served under its own id.
        let (_, _, x) = app.fetch(a.json["displayUrl"].as_str().unwrap()).await;
        let (_, _, y) = app.fetch(theirs.json["displayUrl"].as_str().unwrap()).await;
        assert_eq!(x, y);
    }
);

both!(
    bad_uploads_get_clear_codes_and_store_nothing,
    |c: &mut minigate_gateway::config::Config| c.media.max_bytes = 256 * 1024,
    |app: TestApp| async move {
        let t = app.tenant("acme").await;
        let driver = app.member(t, Role::Driver, None).await;
        let good = app
            .upload_media(Some(&driver), other_photo(), "ok.jpg", Some("invoice"))
            .await;
        good.id();
        let media = app.count("select count(*) from media").await;
        let blobs = app.count("select count(*) from media_blob").await;

        let photo = phone_photo();
        let truncated = photo[..photo.len() / 2].to_vec();
        let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;".to_vec();
        let heic = [
            &b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"[..],
            &[0u8; 64],
        ]
        .concat();
        let bomb = photos::png_claiming(30_000, 30_000);
        let oversize = [photo.clone(), vec![0u8; 300 * 1024]].concat();
        let cases: Vec<Case> = vec![
            ("empty", Vec::new(), Some("accident"), 422, "MEDIA_EMPTY"),
            (
                "truncated",
                truncated,
                Some("accident"),
                422,
                "MEDIA_CORRUPT",
            ),
            (
                "gif named .jpg",
                gif,
                Some("accident"),
                415,
                "MEDIA_UNSUPPORTED_FORMAT",
            ),
            (
                "heic",
                heic,
                Some("accident"),
                415,
                "MEDIA_UNSUPPORTED_FORMAT",
            ),
            (
                "900 megapixels",
                bomb,
                Some("accident"),
                422,
                "MEDIA_DIMENSIONS_EXCEEDED",
            ),
            (
                "oversize",
                oversize,
                Some("accident"),
                413,
                "MEDIA_TOO_LARGE",
            ),
            (
                "unknown purpose",
                photo.clone(),
                Some("selfie"),
                422,
                "MEDIA_PURPOSE_INVALID",
            ),
            (
                "no purpose",
                photo.clone(),
                None,
                422,
                "MEDIA_PURPOSE_INVALID",
            ),
        ];
        for (what, bytes, purpose, status, code) in cases {
            let r = app
                .upload_media(Some(&driver), bytes, "photo.jpg", purpose)
                .await;
            assert_eq!(
                (r.status, r.code()),
                (status, Some(code)),
                "{what}: {}",
                r.json
            );
        }
        let anonymous = app
            .upload_media(None, photo.clone(), "photo.jpg", Some("accident"))
            .await;
        assert_eq!(
            (anonymous.status, anonymous.code()),
            (401, Some("UNAUTHENTICATED"))
        );
        let forged = app
            .upload_media(
                Some("not-a-token"),
                photo.clone(),
                "photo.jpg",
                Some("accident"),
            )
            .await;
        assert_eq!((forged.status, forged.code()), (401, Some("TOKEN_INVALID")));

        assert_eq!(
            app.count("select count(*) from media").await,
            media,
            "nothing recorded"
        );
        assert_eq!(
            app.count("select count(*) from media_blob").await,
            blobs,
            "nothing stored"
        );
        let uploads = app.dir.join("uploads");
        assert_eq!(
            std::fs::read_dir(&uploads).unwrap().count(),
            0,
            "no temporary file left"
        );

        // A JPEG whose EXIF block is garbage is still a photo: processed, claims nothing.
        let jpeg = photos::jpeg(320, 240, &photos::gradient(320, 240));
        let broken = [
            &jpeg[..2],
            &[0xFF, 0xE1, 0x00, 0x10],
            b"Exif\0\0",
            &[0xDE, 0xAD, 0xBE, 0xEF, 0, 1, 2, 3],
            &jpeg[2..],
        ]
        .concat();
        let ok = app
            .upload_media(Some(&driver), broken, "odd.jpg", Some("invoice"))
            .await;
        let id = ok.id().to_owned();
        let mut c = app.db().conn().await.unwrap();
        let row = minigate_media::db::find_media(&mut c, t, id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(row.exif_unreadable);
        assert_eq!((row.width, row.height), (320, 240));
    }
);

both!(
    signed_urls_expire_and_any_change_is_refused,
    |app: TestApp| async move {
        let t = app.tenant("acme").await;
        let driver = app.member(t, Role::Driver, None).await;
        let up = app
            .upload_media(Some(&driver), other_photo(), "a.jpg", Some("invoice"))
            .await;
        let id: minigate_store::Id = up.id().parse().unwrap();
        let url = up.json["displayUrl"].as_str().unwrap().to_owned();
        assert_eq!(app.fetch(&url).await.0, 200);

        let refused = |r: (u16, Option<String>, Vec<u8>)| {
            let v: Value = serde_json::from_slice(&r.2).unwrap_or(Value::Null);
            (
                r.0,
                v["errors"][0]["extensions"]["code"]
                    .as_str()
                    .map(str::to_owned),
            )
        };
        let invalid = (403, Some("MEDIA_URL_INVALID".to_owned()));
        // Another variant, a later expiry, a changed signature, another photo's id.
        assert_eq!(
            refused(app.fetch(&url.replace("/display?", "/original?")).await),
            invalid
        );
        let (head, sig) = url.split_once("&sig=").unwrap();
        let expires: i64 = head.rsplit_once("expires=").unwrap().1.parse().unwrap();
        let later = url.replace(
            &format!("expires={expires}"),
            &format!("expires={}", expires + 86_400),
        );
        assert_eq!(refused(app.fetch(&later).await), invalid);
        let flipped = format!(
            "{head}&sig={}{}",
            if sig.starts_with('A') { "B" } else { "A" },
            &sig[1..]
        );
        assert_eq!(refused(app.fetch(&flipped).await), invalid);
        let other = url.replace(&id.to_string(), &minigate_store::Id::new().to_string());
        assert_eq!(refused(app.fetch(&other).await), invalid);
        assert_eq!(refused(app.fetch(head).await).0, 400, "no signature at all");
        // Genuinely signed, but long ago.
        let media = app.state.media.as_ref().unwrap();
        let old = media.signer().sign(
            id,
            Variant::Display,
            chrono::Utc::now().timestamp() - 30 * 86_400,
        );
        assert_eq!(
            refused(app.fetch(&old).await),
            (403, Some("MEDIA_URL_EXPIRED".to_owned()))
        );
    }
);

both!(
    a_photo_is_usable_by_its_owner_and_by_staff_only_where_its_purpose_allows,
    |app: TestApp| async move {
        let t = app.tenant("acme").await;
        let sh = app.branch(t, "SH").await;
        let bj = app.branch(t, "BJ").await;
        let driver = app.member(t, Role::Driver, Some(sh)).await;
        let other_driver = app.member(t, Role::Driver, Some(sh)).await;
        let staff = app.member(t, Role::Staff, Some(sh)).await;
        let far_staff = app.member(t, Role::Staff, Some(bj)).await;
        let accident = app
            .upload_media(Some(&driver), phone_photo(), "a.jpg", Some("accident"))
            .await;
        let income = app
            .upload_media(
                Some(&driver),
                other_photo(),
                "b.jpg",
                Some("income_screenshot"),
            )
            .await;
        let (acc, inc): (minigate_store::Id, minigate_store::Id) =
            (accident.id().parse().unwrap(), income.id().parse().unwrap());
        let tokens = app.state.deps.tokens.clone();
        let viewer = |tok: &str| tokens.verify(tok).unwrap();
        let mut c = app.db().conn().await.unwrap();
        let code =
            |r: minigate_resolvers::Result<minigate_media::db::MediaRow>| r.err().map(|e| e.code());
        let usable = minigate_resolvers::media::usable;

        assert!(
            usable(
                &mut c,
                &viewer(&driver),
                acc,
                &[Purpose::Accident, Purpose::Damage]
            )
            .await
            .is_ok()
        );
        assert!(
            usable(&mut c, &viewer(&driver), inc, &[Purpose::IncomeScreenshot])
                .await
                .is_ok()
        );
        assert_eq!(
            code(usable(&mut c, &viewer(&driver), acc, &[Purpose::Invoice]).await),
            Some("MEDIA_PURPOSE_INVALID")
        );
        assert_eq!(
            code(usable(&mut c, &viewer(&other_driver), acc, &[Purpose::Accident]).await),
            Some("MEDIA_NOT_FOUND")
        );
        assert!(
            usable(&mut c, &viewer(&staff), acc, &[Purpose::Accident])
                .await
                .is_ok()
        );
        assert_eq!(
            code(usable(&mut c, &viewer(&staff), inc, &[Purpose::IncomeScreenshot]).await),
            Some("MEDIA_NOT_FOUND")
        );
        assert_eq!(
            code(usable(&mut c, &viewer(&far_staff), acc, &[Purpose::Accident]).await),
            Some("MEDIA_NOT_FOUND")
        );
        assert_eq!(
            code(
                usable(
                    &mut c,
                    &viewer(&driver),
                    minigate_store::Id::new(),
                    &[Purpose::Accident]
                )
                .await
            ),
            Some("MEDIA_NOT_FOUND")
        );

        // Another company's operator cannot use or see it.
        let (_, stranger) = app.admin("globex").await;
        assert_eq!(
            code(usable(&mut c, &viewer(&stranger), acc, &[Purpose::Accident]).await),
            Some("MEDIA_NOT_FOUND")
        );
        let seen = app
            .gql(
                &stranger,
                "query($id: ID!) { media(id: $id) { id } }",
                json!({ "id": acc.to_string() }),
            )
            .await;
        assert_eq!(seen.ok()["media"], Value::Null);
        // Staff of the branch see the accident photo with its evidence; the far branch nothing.
        let near = app
            .gql(&staff, MEDIA, json!({ "id": acc.to_string() }))
            .await;
        assert_eq!(
            near.ok()["media"]["evidence"]["claimedCamera"],
            "Apple iPhone 15"
        );
        let far = app
            .gql(&far_staff, MEDIA, json!({ "id": acc.to_string() }))
            .await;
        assert_eq!(far.ok()["media"], Value::Null);
    }
);

both!(
    uploads_count_against_the_users_request_budget,
    |c: &mut minigate_gateway::config::Config| c.limits.per_user_per_minute = 2,
    |app: TestApp| async move {
        let t = app.tenant("acme").await;
        let driver = app.member(t, Role::Driver, None).await;
        for _ in 0..2 {
            let r = app
                .upload_media(Some(&driver), other_photo(), "a.jpg", Some("invoice"))
                .await;
            r.id();
        }
        let third = app
            .upload_media(Some(&driver), other_photo(), "a.jpg", Some("invoice"))
            .await;
        assert_eq!((third.status, third.code()), (429, Some("RATE_LIMITED")));
        assert_eq!(app.count("select count(*) from media").await, 2);
    }
);
