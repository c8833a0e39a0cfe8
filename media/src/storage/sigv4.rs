//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`), header-based, for the S3 service.
//!
//! Pure functions: the request goes in as strings, the `Authorization` value comes out. What gets
//! signed is exactly what [`super::s3`] sends, so the signer is checked against the documented
//! AWS examples below and against a real server in `tests/storage.rs`.

use std::fmt::Write as _;

use aws_lc_rs::{digest, hmac};
use chrono::{DateTime, Utc};

pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// SHA-256 of nothing: the payload hash of every request without a body.
pub(crate) const EMPTY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Who signs, and for which region.
pub(crate) struct Signer<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
}

/// One request as it will be sent.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    /// The path, already URI-encoded (see [`uri_encode`]).
    pub canonical_uri: &'a str,
    /// `a=1&b=2`, keys sorted and encoded; empty when there is no query.
    pub canonical_query: &'a str,
    /// Every header to sign (`host`, `x-amz-date` and `x-amz-content-sha256` at least), each
    /// name once; names in any case, they are lowercased here.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body (also sent as `x-amz-content-sha256`).
    pub payload_sha256: &'a str,
}

/// `20130524T000000Z`, the form of `x-amz-date`.
pub(crate) fn amz_date(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%SZ").to_string()
}

impl Signer<'_> {
    /// The value of the `Authorization` header for `req` made at `amz_date` (which must also be
    /// among the signed headers as `x-amz-date`).
    pub(crate) fn authorization(&self, req: &Request<'_>, amz_date: &str) -> String {
        let (canonical, signed_headers) = canonical_request(req);
        let date = amz_date.get(..8).unwrap_or(amz_date);
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let to_sign = string_to_sign(amz_date, &scope, &canonical);
        let key = signing_key(self.secret_access_key, date, self.region);
        let signature = hex(hmac::sign(&key, to_sign.as_bytes()).as_ref());
        format!(
            "{ALGORITHM} Credential={}/{scope},SignedHeaders={signed_headers},Signature={signature}",
            self.access_key_id
        )
    }
}

/// The canonical request and the `SignedHeaders` list that goes with it.
pub(crate) fn canonical_request(req: &Request<'_>) -> (String, String) {
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), canonical_header_value(value)))
        .collect();
    headers.sort();
    let mut out = String::new();
    out.push_str(req.method);
    out.push('\n');
    out.push_str(req.canonical_uri);
    out.push('\n');
    out.push_str(req.canonical_query);
    out.push('\n');
    for (name, value) in &headers {
        out.push_str(name);
        out.push(':');
        out.push_str(value);
        out.push('\n');
    }
    out.push('\n');
    let signed: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
    let signed = signed.join(";");
    out.push_str(&signed);
    out.push('\n');
    out.push_str(req.payload_sha256);
    (out, signed)
}

/// Trimmed, with runs of spaces inside collapsed to one.
fn canonical_header_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), "s3"), "aws4_request")`.
fn signing_key(secret: &str, date: &str, region: &str) -> hmac::Key {
    let mut key = hmac::Key::new(hmac::HMAC_SHA256, format!("AWS4{secret}").as_bytes());
    for part in [date, region, "s3", "aws4_request"] {
        let tag = hmac::sign(&key, part.as_bytes());
        key = hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref());
    }
    key
}

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// S3's URI encoding: everything but `A-Z a-z 0-9 - . _ ~` percent-encoded in uppercase hex;
/// `/` kept when `keep_slash` (object keys in a path), encoded otherwise (query values).
pub(crate) fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example credentials and time of the AWS S3 documentation ("Signature Calculations for
    // the Authorization Header: Transferring Payload in a Single Chunk", examples section).
    const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const AT: &str = "20130524T000000Z";
    const HOST: &str = "examplebucket.s3.amazonaws.com";

    fn signer() -> Signer<'static> {
        Signer {
            access_key_id: ACCESS_KEY,
            secret_access_key: SECRET_KEY,
            region: "us-east-1",
        }
    }

    #[test]
    fn the_documented_get_object_example_gets_the_documented_signature() {
        let headers = [
            ("Host", HOST),
            ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", AT),
        ];
        let req = Request {
            method: "GET",
            canonical_uri: "/test.txt",
            canonical_query: "",
            headers: &headers,
            payload_sha256: EMPTY_SHA256,
        };
        let (canonical, signed) = canonical_request(&req);
        assert_eq!(signed, "host;range;x-amz-content-sha256;x-amz-date");
        // The documented StringToSign carries this hash of the canonical request.
        assert_eq!(
            string_to_sign(AT, "20130524/us-east-1/s3/aws4_request", &canonical),
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
             7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        assert_eq!(
            signer().authorization(&req, AT),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn the_documented_put_object_example_gets_the_documented_signature() {
        let payload = sha256_hex(b"Welcome to Amazon S3.");
        assert_eq!(
            payload,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        let uri = format!("/{}", uri_encode("test$file.text", true));
        assert_eq!(uri, "/test%24file.text");
        let headers = [
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("Host", HOST),
            ("x-amz-content-sha256", payload.as_str()),
            ("x-amz-date", AT),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ];
        let req = Request {
            method: "PUT",
            canonical_uri: &uri,
            canonical_query: "",
            headers: &headers,
            payload_sha256: &payload,
        };
        let auth = signer().authorization(&req, AT);
        assert!(auth.contains(
            "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
        ));
        assert!(
            auth.ends_with(
                "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
            ),
            "{auth}"
        );
    }

    #[test]
    fn the_documented_list_objects_example_with_a_query_gets_the_documented_signature() {
        let headers = [
            ("host", HOST),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", AT),
        ];
        let req = Request {
            method: "GET",
            canonical_uri: "/",
            canonical_query: "max-keys=2&prefix=J",
            headers: &headers,
            payload_sha256: EMPTY_SHA256,
        };
        assert!(signer().authorization(&req, AT).ends_with(
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        ));
    }

    #[test]
    fn a_different_secret_or_body_is_a_different_signature() {
        let headers = [("host", HOST), ("x-amz-date", AT)];
        let req = |payload| Request {
            method: "PUT",
            canonical_uri: "/b/k",
            canonical_query: "",
            headers: &headers,
            payload_sha256: payload,
        };
        let good = signer().authorization(&req(EMPTY_SHA256), AT);
        let x = sha256_hex(b"x");
        let other_body = signer().authorization(&req(&x), AT);
        let other_secret = Signer {
            secret_access_key: "not-the-secret",
            ..signer()
        }
        .authorization(&req(EMPTY_SHA256), AT);
        assert_ne!(good, other_body);
        assert_ne!(good, other_secret);
        assert!(!other_secret.contains("not-the-secret"));
    }

    #[test]
    fn header_values_are_trimmed_and_inner_spaces_collapsed() {
        assert_eq!(canonical_header_value("  a   b  c "), "a b c");
    }

    #[test]
    fn uri_encoding_follows_s3_rules() {
        assert_eq!(uri_encode("A-z_0.9~", true), "A-z_0.9~");
        assert_eq!(uri_encode("a b+c", true), "a%20b%2Bc");
        assert_eq!(uri_encode("a/b", true), "a/b");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(uri_encode("交", true), "%E4%BA%A4");
    }

    #[test]
    fn amz_date_is_compact_utc() {
        let at = DateTime::parse_from_rfc3339("2013-05-24T00:00:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(amz_date(at), AT);
    }
}
