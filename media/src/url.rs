//! Signed, expiring media URLs. A mini-program `<image src>` cannot send an `Authorization`
//! header, so whoever may see a photo gets a URL that proves it for a while:
//! `/media/{id}/{variant}?expires={unix seconds}&sig={HMAC-SHA256, base64url}`.
//!
//! Expiry times are rounded up to a step, so the same photo shown twice within the step gets the
//! same URL and the phone's image cache keeps working.

use std::{fmt, str::FromStr, time::Duration};

use aws_lc_rs::hmac;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use minigate_store::Id;

use crate::{Error, Result};

/// Which bytes a URL serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Display,
    Thumbnail,
    /// The evidence original, for staff and operators only.
    Original,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Display => "display",
            Variant::Thumbnail => "thumbnail",
            Variant::Original => "original",
        }
    }
}

impl FromStr for Variant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "display" => Ok(Variant::Display),
            "thumbnail" => Ok(Variant::Thumbnail),
            "original" => Ok(Variant::Original),
            _ => Err(Error::UrlInvalid),
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Signs and checks media URLs with one secret.
#[derive(Clone)]
pub struct UrlSigner {
    key: hmac::Key,
    base: String,
    ttl: i64,
    step: i64,
}

impl fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UrlSigner")
            .field("base", &self.base)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl UrlSigner {
    /// `base` is the public origin the phones reach (`https://api.example.com`, no trailing
    /// slash); `ttl` how long a URL works at least.
    pub fn new(secret: &[u8], base: &str, ttl: Duration) -> Self {
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 4).max(1);
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            base: base.trim_end_matches('/').to_owned(),
            ttl,
            step: (ttl / 6).clamp(1, 600),
        }
    }

    fn mac(&self, id: Id, variant: Variant, expires: i64) -> hmac::Tag {
        hmac::sign(&self.key, format!("{id}/{variant}/{expires}").as_bytes())
    }

    /// The URL of `variant` of `id`, valid from `now` (unix seconds) for at least the ttl.
    pub fn sign(&self, id: Id, variant: Variant, now: i64) -> String {
        let earliest = now.saturating_add(self.ttl);
        let expires = earliest
            .div_euclid(self.step)
            .saturating_add(1)
            .saturating_mul(self.step);
        let sig = URL_SAFE_NO_PAD.encode(self.mac(id, variant, expires).as_ref());
        format!(
            "{}/media/{id}/{variant}?expires={expires}&sig={sig}",
            self.base
        )
    }

    /// Checks a URL's parts: a signature that does not match is `UrlInvalid` (whatever the time),
    /// a matching one past its time `UrlExpired`.
    pub fn verify(
        &self,
        id: Id,
        variant: Variant,
        expires: i64,
        sig: &str,
        now: i64,
    ) -> Result<()> {
        let tag = URL_SAFE_NO_PAD
            .decode(sig.as_bytes())
            .map_err(|_| Error::UrlInvalid)?;
        hmac::verify(
            &self.key,
            format!("{id}/{variant}/{expires}").as_bytes(),
            &tag,
        )
        .map_err(|_| Error::UrlInvalid)?;
        if now > expires {
            return Err(Error::UrlExpired);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (Id, Variant, i64, String) {
        let rest = url.split("/media/").nth(1).unwrap();
        let (path, query) = rest.split_once('?').unwrap();
        let (id, variant) = path.split_once('/').unwrap();
        let mut expires = 0;
        let mut sig = String::new();
        for kv in query.split('&') {
            match kv.split_once('=').unwrap() {
                ("expires", v) => expires = v.parse().unwrap(),
                ("sig", v) => sig = v.to_owned(),
                _ => panic!("unexpected {kv}"),
            }
        }
        (id.parse().unwrap(), variant.parse().unwrap(), expires, sig)
    }

    fn signer() -> UrlSigner {
        UrlSigner::new(
            b"test secret",
            "https://api.example.com/",
            Duration::from_secs(3600),
        )
    }

    #[test]
    fn a_signed_url_verifies_until_it_expires() {
        let s = signer();
        let id = Id::new();
        let now = 1_800_000_000;
        let url = s.sign(id, Variant::Display, now);
        assert!(url.starts_with(&format!("https://api.example.com/media/{id}/display?")));
        let (i, v, expires, sig) = parts(&url);
        assert!(expires >= now + 3600 && expires <= now + 3600 + 600);
        assert!(s.verify(i, v, expires, &sig, now).is_ok());
        assert!(s.verify(i, v, expires, &sig, expires).is_ok());
        let late = s.verify(i, v, expires, &sig, expires + 1).err().unwrap();
        assert_eq!(late.code(), "MEDIA_URL_EXPIRED");
    }

    #[test]
    fn any_change_to_a_signed_url_is_refused() {
        let s = signer();
        let id = Id::new();
        let (i, v, expires, sig) = parts(&s.sign(id, Variant::Thumbnail, 1_800_000_000));
        let now = 1_800_000_000;
        let code = |r: Result<()>| r.err().map(|e| e.code());
        // A later expiry, another variant, another photo, a changed or missing signature.
        assert_eq!(
            code(s.verify(i, v, expires + 3600, &sig, now)),
            Some("MEDIA_URL_INVALID")
        );
        assert_eq!(
            code(s.verify(i, Variant::Original, expires, &sig, now)),
            Some("MEDIA_URL_INVALID")
        );
        assert_eq!(
            code(s.verify(Id::new(), v, expires, &sig, now)),
            Some("MEDIA_URL_INVALID")
        );
        let mut bad = sig.clone();
        bad.replace_range(0..1, if bad.starts_with('A') { "B" } else { "A" });
        assert_eq!(
            code(s.verify(i, v, expires, &bad, now)),
            Some("MEDIA_URL_INVALID")
        );
        assert_eq!(
            code(s.verify(i, v, expires, "", now)),
            Some("MEDIA_URL_INVALID")
        );
        assert_eq!(
            code(s.verify(i, v, expires, "!!", now)),
            Some("MEDIA_URL_INVALID")
        );
        // Another secret never verifies ours, even when expired.
        let other = UrlSigner::new(b"other", "", Duration::from_secs(3600));
        assert_eq!(
            code(other.verify(i, v, expires, &sig, expires + 10)),
            Some("MEDIA_URL_INVALID")
        );
    }

    #[test]
    fn the_same_photo_gets_the_same_url_within_a_step() {
        let s = signer();
        let id = Id::new();
        let a = s.sign(id, Variant::Display, 1_800_000_000);
        let b = s.sign(id, Variant::Display, 1_800_000_030);
        assert_eq!(a, b);
        let later = s.sign(id, Variant::Display, 1_800_000_000 + 601);
        assert_ne!(a, later);
    }
}
