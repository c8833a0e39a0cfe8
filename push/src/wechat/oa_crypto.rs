//! Message security for the official account's callback URL (`/wechat/oa/callback`): the URL
//! verification handshake, the `signature` / `msg_signature` checks, and the "safe mode" AES
//! envelope WeChat wraps messages and events in. Pure: no I/O, so the route, the fake server and
//! the tests share it.
//!
//! The scheme, as WeChat documents it (消息加解密技术方案):
//! * `signature = hex(sha1(sort([token, timestamp, nonce]).concat()))`, and in safe mode
//!   `msg_signature` does the same over `[token, timestamp, nonce, Encrypt]`.
//! * `AESKey = base64(EncodingAESKey + "=")` (43 characters, 32 bytes); AES-256-CBC with the
//!   first 16 key bytes as IV over `random(16) ‖ len(4, big endian) ‖ xml ‖ app_id`, padded
//!   PKCS#7-style to a multiple of **32** bytes (not AES's 16), so the padding is ours to strip.
//!
//! The signature is checked before anything is decrypted, so a caller without the token never
//! learns whether a ciphertext's padding was valid.

use std::fmt;

use aws_lc_rs::cipher::{
    AES_256, DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey,
};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA1_FOR_LEGACY_USE_ONLY, digest};
use aws_lc_rs::iv::FixedLength;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::oa_xml::Xml;
use crate::{Error, Result};

/// How far a callback's `timestamp` may be from our clock, either way, when the caller asks for the
/// replay check. WeChat does not require one; five minutes covers clock drift and its retries
/// (three within about fifteen seconds).
pub const MAX_TIMESTAMP_SKEW_SECS: i64 = 5 * 60;

/// WeChat's padding block: PKCS#7 with K = 32.
const PAD_BLOCK: usize = 32;
const RANDOM_LEN: usize = 16;
const LEN_PREFIX: usize = 4;
const ENCODING_AES_KEY_LEN: usize = 43;

/// The query string of a callback, as WeChat sends it. Missing parameters deserialize as empty and
/// then fail the signature check, so a route can take this straight from the URL.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CallbackQuery {
    pub signature: String,
    pub timestamp: String,
    pub nonce: String,
    /// The sender, repeated from the body; informational only (the body is what is signed).
    pub openid: Option<String>,
    /// `aes` in safe (and compatible) mode; absent or `raw` in plain mode.
    pub encrypt_type: Option<String>,
    pub msg_signature: Option<String>,
    /// Only on the GET verification handshake.
    pub echostr: Option<String>,
}

/// A message or event pushed to the official account, with the fields the server acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OaMessage {
    /// `ToUserName`: the official account's original id (`gh_…`).
    pub to: String,
    /// `FromUserName`: the user's openid under the official account.
    pub from_openid: String,
    /// `CreateTime`, Unix seconds.
    pub create_time: i64,
    /// `MsgType`: `event`, `text`, `image`, …
    pub msg_type: String,
    /// `Event` for `MsgType` `event`: `subscribe`, `unsubscribe`, `TEMPLATESENDJOBFINISH`, …
    pub event: Option<String>,
    /// `MsgId` of a user message, or `MsgID` of a template-send report (WeChat spells it both ways).
    pub msg_id: Option<String>,
    /// `Status` of a `TEMPLATESENDJOBFINISH` report: `success`, `failed:user block`, …
    pub status: Option<String>,
    /// The whole plaintext XML, for fields this struct does not lift out.
    pub raw: String,
}

/// What [`OaCrypto::seal`] produces: the `Encrypt` text and the `msg_signature` that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub encrypt: String,
    pub msg_signature: String,
}

impl Sealed {
    /// The POST body WeChat sends in safe mode.
    pub fn to_xml(&self, to_user_name: &str) -> String {
        format!(
            "<xml><ToUserName><![CDATA[{to_user_name}]]></ToUserName><Encrypt><![CDATA[{}]]></Encrypt></xml>",
            self.encrypt
        )
    }
}

/// One official account's callback credentials: the token and EncodingAESKey set in the
/// account's server configuration, and its app id.
#[derive(Clone)]
pub struct OaCrypto {
    token: SecretString,
    aes_key: [u8; 32],
    app_id: String,
    allow_plain_mode: bool,
}

impl fmt::Debug for OaCrypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OaCrypto")
            .field("app_id", &self.app_id)
            .field("allow_plain_mode", &self.allow_plain_mode)
            .finish_non_exhaustive()
    }
}

impl OaCrypto {
    /// Refuses an EncodingAESKey that is not 43 base64 characters (a configuration error).
    pub fn new(token: SecretString, encoding_aes_key: &str, app_id: &str) -> Result<Self> {
        let setup = |reason: &str| Error::Setup {
            reason: format!("official account EncodingAESKey: {reason}"),
            source: None,
        };
        if encoding_aes_key.len() != ENCODING_AES_KEY_LEN {
            return Err(setup("must be 43 characters"));
        }
        // 43 characters + "=" carry 258 bits; the last 2 must be zero. Decoding leniently about
        // them accepts every key WeChat's admin page generates.
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let bytes = engine
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| setup("not base64"))?;
        let aes_key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| setup("does not decode to 32 bytes"))?;
        if token.expose_secret().is_empty() {
            return Err(Error::Setup {
                reason: "official account token is empty".into(),
                source: None,
            });
        }
        Ok(Self {
            token,
            aes_key,
            app_id: app_id.to_owned(),
            allow_plain_mode: false,
        })
    }

    /// Accept plain-mode posts (no `encrypt_type`). Off by default: in plain mode `signature`
    /// covers only the timestamp and nonce, not the body, so anyone who saw one signed URL can
    /// post any XML with it. Turn on only for an account configured in plain mode.
    #[must_use]
    pub fn with_plain_mode(mut self, allow: bool) -> Self {
        self.allow_plain_mode = allow;
        self
    }

    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The GET handshake: on `Ok`, answer the `echostr` verbatim.
    pub fn verify_url(&self, signature: &str, timestamp: &str, nonce: &str) -> Result<()> {
        let expected = self.sign(&[timestamp, nonce]);
        check_signature(&expected, signature)
    }

    /// Authenticates and reads a POSTed message or event. `now` (Unix seconds), when given, also
    /// refuses a `timestamp` more than [`MAX_TIMESTAMP_SKEW_SECS`] away, against replays.
    pub fn open(&self, q: &CallbackQuery, body: &str, now: Option<i64>) -> Result<OaMessage> {
        if let Some(now) = now {
            check_timestamp(&q.timestamp, now)?;
        }
        match q.encrypt_type.as_deref() {
            Some("aes") => {
                let envelope = Xml::parse(body)?;
                let encrypt = envelope
                    .text("Encrypt")?
                    .ok_or(malformed("no Encrypt element"))?;
                let given = q
                    .msg_signature
                    .as_deref()
                    .ok_or(Error::OaSignatureInvalid {
                        reason: "msg_signature missing",
                    })?;
                let expected = self.sign(&[&q.timestamp, &q.nonce, encrypt]);
                check_signature(&expected, given)?;
                let xml = self.decrypt(encrypt)?;
                OaMessage::parse(xml)
            }
            None | Some("raw") => {
                if !self.allow_plain_mode {
                    return Err(Error::OaSignatureInvalid {
                        reason: "plain mode post while safe mode is required",
                    });
                }
                self.verify_url(&q.signature, &q.timestamp, &q.nonce)?;
                OaMessage::parse(body.to_owned())
            }
            Some(_) => Err(malformed("unknown encrypt_type")),
        }
    }

    /// Encrypts `xml` the way WeChat does and signs it, with the caller's 16 random bytes (fixed
    /// in tests, random in the fake server).
    pub fn seal(
        &self,
        xml: &str,
        timestamp: &str,
        nonce: &str,
        random16: [u8; 16],
    ) -> Result<Sealed> {
        let encrypt = self.encrypt(xml, random16)?;
        let msg_signature = self.sign(&[timestamp, nonce, &encrypt]);
        Ok(Sealed {
            encrypt,
            msg_signature,
        })
    }

    fn sign(&self, parts: &[&str]) -> String {
        let mut all: Vec<&str> = Vec::with_capacity(parts.len() + 1);
        all.push(self.token.expose_secret());
        all.extend_from_slice(parts);
        all.sort_unstable();
        let hash = digest(&SHA1_FOR_LEGACY_USE_ONLY, all.concat().as_bytes());
        hex(hash.as_ref())
    }

    fn cipher_key(&self) -> Result<UnboundCipherKey> {
        UnboundCipherKey::new(&AES_256, &self.aes_key).map_err(|_| crypto_library("AES-256 key"))
    }

    fn iv(&self) -> [u8; 16] {
        std::array::from_fn(|i| self.aes_key[i])
    }

    fn encrypt(&self, xml: &str, random16: [u8; 16]) -> Result<String> {
        let len = u32::try_from(xml.len()).map_err(|_| malformed("message too long"))?;
        let mut buf =
            Vec::with_capacity(RANDOM_LEN + LEN_PREFIX + xml.len() + self.app_id.len() + PAD_BLOCK);
        buf.extend_from_slice(&random16);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(xml.as_bytes());
        buf.extend_from_slice(self.app_id.as_bytes());
        let pad = PAD_BLOCK - buf.len() % PAD_BLOCK;
        let pad_byte = u8::try_from(pad).map_err(|_| crypto_library("padding"))?;
        buf.resize(buf.len() + pad, pad_byte);

        let key = EncryptingKey::cbc(self.cipher_key()?).map_err(|_| crypto_library("CBC key"))?;
        key.less_safe_encrypt(
            &mut buf,
            EncryptionContext::Iv128(FixedLength::from(self.iv())),
        )
        .map_err(|_| crypto_library("CBC encryption"))?;
        Ok(BASE64.encode(buf))
    }

    fn decrypt(&self, encrypt: &str) -> Result<String> {
        let mut buf = BASE64
            .decode(encrypt)
            .map_err(|_| malformed("Encrypt is not base64"))?;
        if buf.is_empty() || buf.len() % PAD_BLOCK != 0 {
            return Err(malformed("ciphertext length is not a multiple of 32"));
        }
        let key = DecryptingKey::cbc(self.cipher_key()?).map_err(|_| crypto_library("CBC key"))?;
        let plain = key
            .decrypt(
                &mut buf,
                DecryptionContext::Iv128(FixedLength::from(self.iv())),
            )
            .map_err(|_| malformed("decryption failed"))?;
        let plain = strip_padding(plain)?;

        let body = plain
            .get(RANDOM_LEN..)
            .ok_or(malformed("plaintext shorter than its header"))?;
        let (len, rest) = body
            .split_first_chunk::<LEN_PREFIX>()
            .ok_or(malformed("plaintext shorter than its header"))?;
        let len = usize::try_from(u32::from_be_bytes(*len))
            .map_err(|_| malformed("length prefix beyond the plaintext"))?;
        if len > rest.len() {
            return Err(malformed("length prefix beyond the plaintext"));
        }
        let (xml, app_id) = rest.split_at(len);
        if app_id != self.app_id.as_bytes() {
            return Err(malformed("sealed for another app id"));
        }
        String::from_utf8(xml.to_vec()).map_err(|_| malformed("message is not UTF-8"))
    }
}

impl OaMessage {
    fn parse(raw: String) -> Result<Self> {
        let xml = Xml::parse(&raw)?;
        let required = |name: &str, missing: &'static str| -> Result<String> {
            xml.text(name)?.map(str::to_owned).ok_or(malformed(missing))
        };
        let create_time = required("CreateTime", "no CreateTime")?
            .parse::<i64>()
            .map_err(|_| malformed("CreateTime is not a number"))?;
        let optional =
            |name: &str| -> Result<Option<String>> { Ok(xml.text(name)?.map(str::to_owned)) };
        let msg_id = match optional("MsgId")? {
            Some(id) => Some(id),
            None => optional("MsgID")?,
        };
        Ok(Self {
            to: required("ToUserName", "no ToUserName")?,
            from_openid: required("FromUserName", "no FromUserName")?,
            create_time,
            msg_type: required("MsgType", "no MsgType")?,
            event: optional("Event")?,
            msg_id,
            status: optional("Status")?,
            raw,
        })
    }
}

pub(super) fn malformed(reason: &'static str) -> Error {
    Error::OaMessageMalformed { reason }
}

/// The crypto library refused something that is valid by construction: an internal error.
fn crypto_library(what: &str) -> Error {
    Error::Setup {
        reason: format!("crypto library refused the {what}"),
        source: None,
    }
}

fn check_signature(expected_hex: &str, given: &str) -> Result<()> {
    let given = given.trim().to_ascii_lowercase();
    verify_slices_are_equal(expected_hex.as_bytes(), given.as_bytes()).map_err(|_| {
        Error::OaSignatureInvalid {
            reason: "signature mismatch",
        }
    })
}

fn check_timestamp(timestamp: &str, now: i64) -> Result<()> {
    let ts: i64 = timestamp.parse().map_err(|_| Error::OaSignatureInvalid {
        reason: "timestamp is not a number",
    })?;
    if now.abs_diff(ts) > MAX_TIMESTAMP_SKEW_SECS.unsigned_abs() {
        return Err(Error::OaSignatureInvalid {
            reason: "timestamp outside the replay window",
        });
    }
    Ok(())
}

/// Removes WeChat's K = 32 PKCS#7 padding, refusing anything a correct sender could not produce.
fn strip_padding(plain: &[u8]) -> Result<&[u8]> {
    let bad = || malformed("bad padding");
    let &last = plain.last().ok_or_else(bad)?;
    let pad = usize::from(last);
    if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
        return Err(bad());
    }
    let (data, padding) = plain.split_at(plain.len() - pad);
    if padding.iter().any(|&b| b != last) {
        return Err(bad());
    }
    Ok(data)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    // WeChat's own interoperability fixture, from the official message-crypto sample code
    // (cryptoDemo.zip, Java/src/com/qq/weixin/mp/aes/WXBizMsgCryptTest.java): not live credentials.
    const TOKEN: &str = "pamtest";
    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const APP_ID: &str = "wxb11529c136998cb6";
    const TIMESTAMP: &str = "1409304348";
    const NONCE: &str = "xxxxxx";
    const RANDOM: [u8; 16] = *b"aaaabbbbccccdddd";
    const MSG1: &str = "我是中文abcd123";
    const ENCRYPT1: &str =
        "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==";
    const MSG2: &str = "<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA[gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo]]></Title><Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>";
    const ENCRYPT2: &str = "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweImX9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb";
    // Computed by hand: `printf '%s' <sorted parts concatenated> | sha1sum`.
    const URL_SIGNATURE: &str = "76480565cbe296026c53aaacd1ad523a1ddba24f";
    const MSG_SIGNATURE1: &str = "82c962d39941aa48552f90ef55aa323dc620cc10";
    const MSG_SIGNATURE2: &str = "ea88b765074e41eb8c7a75b449db34fa2fd560d5";

    fn crypto() -> OaCrypto {
        OaCrypto::new(SecretString::from(TOKEN), KEY, APP_ID).unwrap()
    }

    fn safe_query(msg_signature: &str) -> CallbackQuery {
        CallbackQuery {
            signature: "ignored-in-safe-mode".into(),
            timestamp: TIMESTAMP.into(),
            nonce: NONCE.into(),
            openid: Some("oUser".into()),
            encrypt_type: Some("aes".into()),
            msg_signature: Some(msg_signature.into()),
            echostr: None,
        }
    }

    fn event_xml(event: &str, extra: &str) -> String {
        format!(
            "<xml>\n  <ToUserName><![CDATA[gh_fleet]]></ToUserName>\n  <FromUserName><![CDATA[oDriver42]]></FromUserName>\n  <CreateTime>1700000000</CreateTime>\n  <MsgType><![CDATA[event]]></MsgType>\n  <Event><![CDATA[{event}]]></Event>{extra}\n</xml>"
        )
    }

    /// Seals `xml` and opens it again as WeChat's POST would arrive.
    fn round_trip(c: &OaCrypto, xml: &str) -> Result<OaMessage> {
        let sealed = c.seal(xml, TIMESTAMP, NONCE, RANDOM)?;
        c.open(
            &safe_query(&sealed.msg_signature),
            &sealed.to_xml("gh_fleet"),
            None,
        )
    }

    /// Encrypts `plain` (already a multiple of 16 bytes, padding or not) with the account's key, and
    /// signs it: a sender with the token that builds the plaintext wrong.
    fn sealed_raw(c: &OaCrypto, plain: &[u8]) -> (CallbackQuery, String) {
        let mut buf = plain.to_vec();
        let key = EncryptingKey::cbc(c.cipher_key().unwrap()).unwrap();
        key.less_safe_encrypt(
            &mut buf,
            EncryptionContext::Iv128(FixedLength::from(c.iv())),
        )
        .unwrap();
        let encrypt = BASE64.encode(buf);
        let sig = c.sign(&[TIMESTAMP, NONCE, &encrypt]);
        let body = Sealed {
            encrypt,
            msg_signature: sig.clone(),
        }
        .to_xml("gh_fleet");
        (safe_query(&sig), body)
    }

    fn framed(xml: &str, app_id: &str) -> Vec<u8> {
        let mut v = RANDOM.to_vec();
        v.extend_from_slice(&u32::try_from(xml.len()).unwrap().to_be_bytes());
        v.extend_from_slice(xml.as_bytes());
        v.extend_from_slice(app_id.as_bytes());
        v
    }

    fn malformed_reason(r: Result<OaMessage>) -> &'static str {
        match r {
            Err(Error::OaMessageMalformed { reason }) => reason,
            other => panic!("expected OaMessageMalformed, got {other:?}"),
        }
    }

    fn assert_not_authentic<T: fmt::Debug>(r: Result<T>) {
        match r {
            Err(e @ Error::OaSignatureInvalid { .. }) => {
                assert_eq!(e.code(), "WECHAT_OA_SIGNATURE_INVALID");
            }
            other => panic!("expected OaSignatureInvalid, got {other:?}"),
        }
    }

    #[test]
    fn url_verification_accepts_the_hand_computed_signature_and_refuses_others() {
        let c = crypto();
        c.verify_url(URL_SIGNATURE, TIMESTAMP, NONCE).unwrap();
        c.verify_url(&URL_SIGNATURE.to_uppercase(), TIMESTAMP, NONCE)
            .unwrap();
        assert_not_authentic(c.verify_url(MSG_SIGNATURE1, TIMESTAMP, NONCE));
        assert_not_authentic(c.verify_url(URL_SIGNATURE, "1409304349", NONCE));
        assert_not_authentic(c.verify_url(URL_SIGNATURE, TIMESTAMP, "xxxxxy"));
        assert_not_authentic(c.verify_url("", TIMESTAMP, NONCE));
        let other = OaCrypto::new(SecretString::from("other"), KEY, APP_ID).unwrap();
        assert_not_authentic(other.verify_url(URL_SIGNATURE, TIMESTAMP, NONCE));
    }

    #[test]
    fn seal_reproduces_wechats_published_vectors() {
        let c = crypto();
        let s1 = c.seal(MSG1, TIMESTAMP, NONCE, RANDOM).unwrap();
        assert_eq!(s1.encrypt, ENCRYPT1);
        assert_eq!(s1.msg_signature, MSG_SIGNATURE1);
        let s2 = c.seal(MSG2, TIMESTAMP, NONCE, RANDOM).unwrap();
        assert_eq!(s2.encrypt, ENCRYPT2);
        assert_eq!(s2.msg_signature, MSG_SIGNATURE2);
        assert_eq!(c.decrypt(ENCRYPT1).unwrap(), MSG1);
    }

    #[test]
    fn wechats_published_video_message_opens_to_its_fields() {
        let body = format!(
            "<xml><ToUserName><![CDATA[toUser]]></ToUserName><Encrypt><![CDATA[{ENCRYPT2}]]></Encrypt></xml>"
        );
        let m = crypto()
            .open(&safe_query(MSG_SIGNATURE2), &body, None)
            .unwrap();
        assert_eq!(m.to, "oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw");
        assert_eq!(m.from_openid, "gh_7f083739789a");
        assert_eq!(m.create_time, 1_407_743_423);
        assert_eq!(m.msg_type, "video");
        assert_eq!(m.event, None);
        assert_eq!(m.raw, MSG2);
    }

    #[test]
    fn sealed_subscribe_event_opens_to_the_right_fields() {
        let xml = event_xml("subscribe", "\n  <EventKey><![CDATA[]]></EventKey>");
        let m = round_trip(&crypto(), &xml).unwrap();
        assert_eq!(
            m,
            OaMessage {
                to: "gh_fleet".into(),
                from_openid: "oDriver42".into(),
                create_time: 1_700_000_000,
                msg_type: "event".into(),
                event: Some("subscribe".into()),
                msg_id: None,
                status: None,
                raw: xml,
            }
        );
    }

    #[test]
    fn sealed_unsubscribe_event_opens() {
        let m = round_trip(&crypto(), &event_xml("unsubscribe", "")).unwrap();
        assert_eq!(m.event.as_deref(), Some("unsubscribe"));
        assert_eq!(m.from_openid, "oDriver42");
    }

    #[test]
    fn template_send_job_finish_carries_its_msg_id_and_status() {
        let xml = event_xml(
            "TEMPLATESENDJOBFINISH",
            "<MsgID>200163836</MsgID><Status><![CDATA[failed:user block]]></Status>",
        );
        let m = round_trip(&crypto(), &xml).unwrap();
        assert_eq!(m.event.as_deref(), Some("TEMPLATESENDJOBFINISH"));
        assert_eq!(m.msg_id.as_deref(), Some("200163836"));
        assert_eq!(m.status.as_deref(), Some("failed:user block"));
    }

    #[test]
    fn user_text_message_keeps_its_msg_id_and_its_content_cannot_pose_as_fields() {
        let xml = "<xml><ToUserName><![CDATA[gh_fleet]]></ToUserName><FromUserName><![CDATA[oU]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[<Event><![CDATA[subscribe]]]]><![CDATA[></Event><Status>x</Status>]]></Content><MsgId>1234567890123456</MsgId></xml>";
        let m = round_trip(&crypto(), xml).unwrap();
        assert_eq!(m.msg_type, "text");
        assert_eq!(m.event, None);
        assert_eq!(m.status, None);
        assert_eq!(m.msg_id.as_deref(), Some("1234567890123456"));
    }

    #[test]
    fn wrong_msg_signature_is_refused() {
        let c = crypto();
        let sealed = c
            .seal(&event_xml("subscribe", ""), TIMESTAMP, NONCE, RANDOM)
            .unwrap();
        let body = sealed.to_xml("gh_fleet");
        assert_not_authentic(c.open(&safe_query(URL_SIGNATURE), &body, None));
        let mut missing = safe_query("");
        missing.msg_signature = None;
        assert_not_authentic(c.open(&missing, &body, None));
        // Same signature, other nonce: the nonce is signed too.
        let mut q = safe_query(&sealed.msg_signature);
        q.nonce = "yyyyyy".into();
        assert_not_authentic(c.open(&q, &body, None));
    }

    #[test]
    fn tampered_encrypt_is_refused_by_the_signature_and_never_decrypted() {
        let c = crypto();
        let sealed = c
            .seal(&event_xml("subscribe", ""), TIMESTAMP, NONCE, RANDOM)
            .unwrap();
        let mut tampered = sealed.encrypt.clone().into_bytes();
        tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
        let tampered = Sealed {
            encrypt: String::from_utf8(tampered).unwrap(),
            msg_signature: sealed.msg_signature.clone(),
        };
        assert_not_authentic(c.open(
            &safe_query(&sealed.msg_signature),
            &tampered.to_xml("gh_fleet"),
            None,
        ));
    }

    #[test]
    fn corrupted_ciphertext_with_a_valid_signature_is_malformed_not_a_panic() {
        let c = crypto();
        let sealed = c
            .seal(&event_xml("subscribe", ""), TIMESTAMP, NONCE, RANDOM)
            .unwrap();
        let mut raw = BASE64.decode(&sealed.encrypt).unwrap();
        for i in 0..raw.len() {
            raw[i] ^= 0x5a;
            let encrypt = BASE64.encode(&raw);
            let sig = c.sign(&[TIMESTAMP, NONCE, &encrypt]);
            let body = Sealed {
                encrypt,
                msg_signature: sig.clone(),
            }
            .to_xml("gh_fleet");
            // Flipping a byte of the first block scrambles only the random prefix, which is fine.
            if let Err(e) = c.open(&safe_query(&sig), &body, None) {
                assert_eq!(e.code(), "WECHAT_OA_MESSAGE_MALFORMED");
            }
            raw[i] ^= 0x5a;
        }
        for bad in ["!!!not base64!!!", "", "AAAA", "QUJDREVGR0hJSktMTU5PUA=="] {
            let sig = c.sign(&[TIMESTAMP, NONCE, bad]);
            let body = format!("<xml><Encrypt><![CDATA[{bad}]]></Encrypt></xml>");
            assert!(!malformed_reason(c.open(&safe_query(&sig), &body, None)).is_empty());
        }
    }

    #[test]
    fn message_sealed_for_another_app_id_is_refused() {
        let foreign = OaCrypto::new(SecretString::from(TOKEN), KEY, "wxforeign0000000").unwrap();
        let sealed = foreign
            .seal(&event_xml("subscribe", ""), TIMESTAMP, NONCE, RANDOM)
            .unwrap();
        let r = crypto().open(
            &safe_query(&sealed.msg_signature),
            &sealed.to_xml("gh_fleet"),
            None,
        );
        assert_eq!(malformed_reason(r), "sealed for another app id");
    }

    #[test]
    fn encoding_aes_key_of_the_wrong_shape_is_a_setup_error() {
        for key in [
            "",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDE!G",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG=",
            "我是中文abcdefghijklmnopqrstuvwxyz01234",
        ] {
            match OaCrypto::new(SecretString::from(TOKEN), key, APP_ID) {
                Err(e @ Error::Setup { .. }) => assert_eq!(e.code(), "INTERNAL"),
                other => panic!("{key:?} gave {other:?}"),
            }
        }
        assert!(OaCrypto::new(SecretString::from(""), KEY, APP_ID).is_err());
    }

    #[test]
    fn bad_padding_is_refused() {
        let c = crypto();
        let mut frame = framed("<xml/>", APP_ID);
        let fill = 64 - frame.len();
        // Pad byte 0, pad byte 33 (> K), and pad bytes that disagree.
        for pad in [
            vec![0u8; fill],
            vec![33u8; fill],
            [vec![7u8; fill - 1], vec![fill_u8(fill)]].concat(),
        ] {
            let plain = [frame.clone(), pad].concat();
            let (q, body) = sealed_raw(&c, &plain);
            assert_eq!(malformed_reason(c.open(&q, &body, None)), "bad padding");
        }
        // A ciphertext that is a multiple of 16 but not of 32 cannot be WeChat's.
        frame.truncate(16);
        let (q, body) = sealed_raw(&c, &frame);
        assert_eq!(
            malformed_reason(c.open(&q, &body, None)),
            "ciphertext length is not a multiple of 32"
        );
    }

    fn fill_u8(n: usize) -> u8 {
        u8::try_from(n).unwrap()
    }

    #[test]
    fn length_prefix_beyond_the_plaintext_is_refused() {
        let c = crypto();
        let mut frame = framed("<xml/>", APP_ID);
        frame[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        let pad = 32 - frame.len() % 32;
        frame.resize(frame.len() + pad, fill_u8(pad));
        let (q, body) = sealed_raw(&c, &frame);
        assert_eq!(
            malformed_reason(c.open(&q, &body, None)),
            "length prefix beyond the plaintext"
        );
        // Valid padding that leaves less than the 20-byte header.
        let (q, body) = sealed_raw(&c, &[[1u8; 16].as_slice(), &[16u8; 16]].concat());
        assert_eq!(
            malformed_reason(c.open(&q, &body, None)),
            "plaintext shorter than its header"
        );
    }

    #[test]
    fn garbage_xml_is_malformed_and_never_panics() {
        let c = crypto().with_plain_mode(true);
        let q = CallbackQuery {
            signature: URL_SIGNATURE.into(),
            timestamp: TIMESTAMP.into(),
            nonce: NONCE.into(),
            ..CallbackQuery::default()
        };
        let deep = format!("<xml><ToUserName>{}</ToUserName></xml>", "<a>".repeat(50));
        for body in [
            "",
            "success",
            "<xml>",
            "<xml></xml>",
            "<xml><ToUserName>x</ToUserName>",
            "<xml><ToUserName><![CDATA[x</ToUserName></xml>",
            "<xml><ToUserName>x</FromUserName></xml>",
            "<xml a=\"1\"><ToUserName>x</ToUserName></xml>",
            "<!DOCTYPE xml [<!ENTITY e \"x\">]><xml><ToUserName>&e;</ToUserName></xml>",
            "<xml><!-- c --><ToUserName>x</ToUserName></xml>",
            "<xml><ToUserName>a&bogus;b</ToUserName></xml>",
            "<xml><ToUserName>a&amp</ToUserName></xml>",
            "<xml>text<ToUserName>x</ToUserName></xml>",
            "<xml></xml>trailing",
            "<?xml version=\"1.0\"",
            "<xml><ToUserName>a</ToUserName><ToUserName>b</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType></xml>",
            "<xml><ToUserName>a</ToUserName><FromUserName>o</FromUserName><CreateTime>soon</CreateTime><MsgType>event</MsgType></xml>",
            "<xml><ToUserName><b>a</b></ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType></xml>",
            "<xml><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType></xml>",
            "<xml><ToUserName>a<b>c</b></ToUserName></xml>",
            "<xml><é>x</é></xml>",
            "<xml><></></xml>",
            deep.as_str(),
        ] {
            let e = c.open(&q, body, None).unwrap_err();
            assert_eq!(e.code(), "WECHAT_OA_MESSAGE_MALFORMED", "{body:?}: {e}");
            // The same garbage inside a correctly sealed envelope.
            let e = round_trip(&c, body).unwrap_err();
            assert_eq!(
                e.code(),
                "WECHAT_OA_MESSAGE_MALFORMED",
                "sealed {body:?}: {e}"
            );
        }
        // And in the envelope itself.
        for body in [
            "",
            "<xml><ToUserName>x</ToUserName></xml>",
            "<xml><Encrypt><x/></Encrypt></xml>",
        ] {
            let e = c.open(&safe_query(MSG_SIGNATURE1), body, None).unwrap_err();
            assert_eq!(e.code(), "WECHAT_OA_MESSAGE_MALFORMED", "{body:?}: {e}");
        }
    }

    #[test]
    fn parser_survives_arbitrary_bytes_and_mutations() {
        let seed = event_xml(
            "TEMPLATESENDJOBFINISH",
            "<Status><![CDATA[success]]></Status>",
        );
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5_000 {
            let mut bytes = seed.clone().into_bytes();
            for _ in 0..(next() % 6 + 1) {
                let i = usize::try_from(next() % u64::try_from(bytes.len()).unwrap()).unwrap();
                match next() % 3 {
                    0 => bytes[i] = b"<>/![]&;x \n"[usize::try_from(next() % 11).unwrap()],
                    1 => {
                        bytes.remove(i);
                    }
                    _ => bytes.truncate(i),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = OaMessage::parse(text.into_owned());
        }
    }

    #[test]
    fn whitespace_plain_text_values_entities_and_a_declaration_are_read() {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xml>\n\t<ToUserName>\n  <![CDATA[gh_fleet]]>\n </ToUserName>\n\t<FromUserName> o&amp;&#x41;&#66; </FromUserName>\r\n\t<CreateTime> 1700000000 </CreateTime>\n\t<MsgType>event</MsgType>\n\t<Event/>\n\t<ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType></ScanCodeInfo>\n</xml>\n";
        let m = round_trip(&crypto(), xml).unwrap();
        assert_eq!(m.to, "gh_fleet");
        assert_eq!(m.from_openid, "o&AB");
        assert_eq!(m.create_time, 1_700_000_000);
        assert_eq!(m.msg_type, "event");
        assert_eq!(m.event.as_deref(), Some(""));
    }

    #[test]
    fn plain_mode_is_checked_with_signature_and_refused_unless_enabled() {
        let xml = event_xml("subscribe", "");
        let mut q = CallbackQuery {
            signature: URL_SIGNATURE.into(),
            timestamp: TIMESTAMP.into(),
            nonce: NONCE.into(),
            openid: Some("oDriver42".into()),
            ..CallbackQuery::default()
        };
        assert_not_authentic(crypto().open(&q, &xml, None));
        let plain = crypto().with_plain_mode(true);
        let m = plain.open(&q, &xml, None).unwrap();
        assert_eq!(m.event.as_deref(), Some("subscribe"));
        q.encrypt_type = Some("raw".into());
        plain.open(&q, &xml, None).unwrap();
        q.signature = MSG_SIGNATURE1.into();
        assert_not_authentic(plain.open(&q, &xml, None));
        q.encrypt_type = Some("sm4".into());
        assert_eq!(
            malformed_reason(plain.open(&q, &xml, None)),
            "unknown encrypt_type"
        );
    }

    #[test]
    fn timestamp_outside_the_replay_window_is_refused_when_now_is_given() {
        let c = crypto();
        let sealed = c
            .seal(&event_xml("subscribe", ""), TIMESTAMP, NONCE, RANDOM)
            .unwrap();
        let body = sealed.to_xml("gh_fleet");
        let q = safe_query(&sealed.msg_signature);
        let ts: i64 = TIMESTAMP.parse().unwrap();
        for now in [
            ts,
            ts - MAX_TIMESTAMP_SKEW_SECS,
            ts + MAX_TIMESTAMP_SKEW_SECS,
        ] {
            c.open(&q, &body, Some(now)).unwrap();
        }
        for now in [
            ts - MAX_TIMESTAMP_SKEW_SECS - 1,
            ts + 3600,
            i64::MIN,
            i64::MAX,
        ] {
            assert_not_authentic(c.open(&q, &body, Some(now)));
        }
        let mut q = q;
        q.timestamp = "tomorrow".into();
        assert_not_authentic(c.open(&q, &body, Some(ts)));
    }

    #[test]
    fn debug_output_redacts_the_token_and_key() {
        let shown = format!("{:?}", crypto());
        assert!(shown.contains(APP_ID));
        assert!(!shown.contains(TOKEN));
        assert!(!shown.contains("aes_key"));
    }
}
