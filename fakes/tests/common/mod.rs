//! What the payment fakes' tests share: the client's own crypto (aws-lc-rs directly, not the
//! fakes' helpers), the WeChat Pay merchant and the Alipay app they set up, and the Alipay
//! client's requests and answers.

// Each test crate uses only the helpers for the providers it drives.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{FixedOffset, NaiveDate, Utc};
use minigate_fakes::alipay::{AlipayApp, FakeAlipay};
use minigate_fakes::keys::RsaPem;
use minigate_fakes::wechat_pay::{FakeWechatPay, WechatPayMerchant, WechatPaySigner};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Endpoint, Server};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Crypto the client does itself
// ---------------------------------------------------------------------------------------------

pub fn der(pem: &str, label: &str) -> Vec<u8> {
    assert!(pem.contains(&format!("BEGIN {label}")), "not a {label} PEM");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

pub fn sign(private_pem: &str, message: &str) -> String {
    let key = RsaKeyPair::from_pkcs8(&der(private_pem, "PRIVATE KEY")).unwrap();
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        message.as_bytes(),
        &mut sig,
    )
    .unwrap();
    STANDARD.encode(sig)
}

pub fn verifies(public_pem: &str, message: &str, signature_b64: &str) -> bool {
    let Ok(sig) = STANDARD.decode(signature_b64) else {
        return false;
    };
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der(public_pem, "PUBLIC KEY"))
        .verify(message.as_bytes(), &sig)
        .is_ok()
}

pub fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap()
}

pub fn today() -> NaiveDate {
    Utc::now().with_timezone(&beijing()).date_naive()
}

/// Now in Beijing as `yyyy-MM-dd HH:mm:ss`, Alipay's `timestamp`.
pub fn beijing_now() -> String {
    Utc::now()
        .with_timezone(&beijing())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// WeChat Pay
// ---------------------------------------------------------------------------------------------

pub const MCH_ID: &str = "1900000109";
pub const APP_ID: &str = "wxd678efh567hg6787";
pub const SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
pub const APIV3_KEY: &str = "0123456789abcdefghijABCDEFGHIJ01";
pub const PUB_KEY_ID: &str = "PUB_KEY_ID_0119000001092024052000000000000001";

pub struct Wechat {
    pub fake: FakeWechatPay,
    pub merchant: RsaPem,
    pub wechatpay: RsaPem,
    pub http: reqwest::Client,
}

/// The test merchant, signed for by WeChat Pay with the `wechatpay` public key.
pub fn wechat_pay_merchant(merchant: &RsaPem, wechatpay: &RsaPem) -> WechatPayMerchant {
    WechatPayMerchant {
        mch_id: MCH_ID.into(),
        app_ids: vec![APP_ID.into()],
        merchant_serial: SERIAL.into(),
        merchant_public_pem: merchant.public_pem.clone(),
        apiv3_key: APIV3_KEY.into(),
        signer: WechatPaySigner::PublicKey {
            id: PUB_KEY_ID.into(),
            private_pem: wechatpay.private_pem.clone(),
        },
    }
}

pub async fn wechat() -> Wechat {
    let fake = FakeWechatPay::start().await;
    let merchant = RsaPem::generate();
    let wechatpay = RsaPem::generate();
    fake.add_merchant(wechat_pay_merchant(&merchant, &wechatpay));
    Wechat {
        fake,
        merchant,
        wechatpay,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

/// The merchant's signature of a request: over `method\npath\ntimestamp\nnonce\nbody\n`.
pub fn request_signature(
    merchant_private_pem: &str,
    method: &str,
    path: &str,
    ts: i64,
    nonce: &str,
    body: &str,
) -> String {
    sign(
        merchant_private_pem,
        &format!("{method}\n{path}\n{ts}\n{nonce}\n{body}\n"),
    )
}

/// Whether an answer's `Wechatpay-Signature` is `public_pem`'s signature of
/// `timestamp\nnonce\nbody\n`.
pub fn answer_verifies(headers: &reqwest::header::HeaderMap, body: &str, public_pem: &str) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(ts), Some(nonce), Some(sig)) = (
        header("Wechatpay-Timestamp"),
        header("Wechatpay-Nonce"),
        header("Wechatpay-Signature"),
    ) else {
        return false;
    };
    verifies(public_pem, &format!("{ts}\n{nonce}\n{body}\n"), sig)
}

/// A notification's resource opened with the APIv3 key.
pub fn decrypt_resource(notification_body: &str) -> Value {
    let v: Value = serde_json::from_str(notification_body).unwrap();
    serde_json::from_slice(&decrypt(&v["resource"])).unwrap()
}

/// An `AEAD_AES_256_GCM` object (notification resource, encrypted certificate) opened with the
/// APIv3 key; the tag authenticates it.
pub fn decrypt(r: &Value) -> Vec<u8> {
    assert_eq!(r["algorithm"], "AEAD_AES_256_GCM");
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, APIV3_KEY.as_bytes()).unwrap());
    let nonce = r["nonce"].as_str().unwrap();
    assert_eq!(nonce.len(), 12);
    let mut data = STANDARD.decode(r["ciphertext"].as_str().unwrap()).unwrap();
    let plain = key
        .open_in_place(
            Nonce::try_assume_unique_for_key(nonce.as_bytes()).unwrap(),
            Aad::from(r["associated_data"].as_str().unwrap().as_bytes()),
            &mut data,
        )
        .unwrap();
    plain.to_vec()
}

/// Serves `endpoint` (a receiver standing in for our callback routes) on a free local port.
pub async fn serve(endpoint: impl Endpoint + 'static) -> SocketAddr {
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    tokio::spawn(async move {
        let _ = Server::new_with_acceptor(acceptor).run(endpoint).await;
    });
    addr
}

/// What a receiver standing in for one of our callback routes got.
#[derive(Debug)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Alipay
// ---------------------------------------------------------------------------------------------

pub const ALIPAY_APP_ID: &str = "2021004100000001";

pub struct Ali {
    pub fake: FakeAlipay,
    pub app: RsaPem,
    pub alipay: RsaPem,
    pub http: reqwest::Client,
}

/// A fake Alipay with each of `app_ids` added, all signing with one app key and one Alipay key.
pub async fn alipay_with_apps(app_ids: &[&str]) -> Ali {
    let fake = FakeAlipay::start().await;
    let app = RsaPem::generate();
    let alipay = RsaPem::generate();
    for app_id in app_ids {
        fake.add_app(AlipayApp {
            app_id: (*app_id).into(),
            app_public_pem: app.public_pem.clone(),
            alipay_private_pem: alipay.private_pem.clone(),
        });
    }
    Ali {
        fake,
        app,
        alipay,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

pub fn content(params: &BTreeMap<String, String>, leave_out: &[&str]) -> String {
    params
        .iter()
        .filter(|(k, v)| !v.is_empty() && !leave_out.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn form(params: &BTreeMap<String, String>) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// A gateway answer: the raw node text as it appears in the body, and `sign`.
pub struct AliAnswer {
    pub node_text: String,
    pub node: Value,
    pub sign: Option<String>,
}

impl AliAnswer {
    pub fn parse(body: &str, node_name: &str) -> AliAnswer {
        let v: Value = serde_json::from_str(body).unwrap();
        let sign = v["sign"].as_str().map(str::to_owned);
        // The node's text exactly as sent: what follows `"name":` up to `,"sign"` or the end.
        let start = body.find(&format!("\"{node_name}\":")).unwrap() + node_name.len() + 3;
        let end = body.rfind(",\"sign\":").unwrap_or(body.len() - 1);
        let node_text = body[start..end].to_owned();
        AliAnswer {
            node: serde_json::from_str(&node_text).unwrap(),
            node_text,
            sign,
        }
    }

    pub fn verifies_with(&self, public_pem: &str) -> bool {
        self.sign
            .as_deref()
            .is_some_and(|s| verifies(public_pem, &self.node_text, s))
    }

    pub fn sub_code(&self) -> &str {
        self.node["sub_code"].as_str().unwrap_or("")
    }
}

impl Ali {
    pub fn params(&self, method: &str, biz: &Value) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app_id".to_owned(), ALIPAY_APP_ID.to_owned()),
            ("method".to_owned(), method.to_owned()),
            ("format".to_owned(), "JSON".to_owned()),
            ("charset".to_owned(), "utf-8".to_owned()),
            ("sign_type".to_owned(), "RSA2".to_owned()),
            ("timestamp".to_owned(), beijing_now()),
            ("version".to_owned(), "1.0".to_owned()),
            ("biz_content".to_owned(), biz.to_string()),
        ])
    }

    pub fn signed(&self, mut params: BTreeMap<String, String>) -> BTreeMap<String, String> {
        let sign = sign(&self.app.private_pem, &content(&params, &["sign"]));
        params.insert("sign".to_owned(), sign);
        params
    }

    pub async fn post(&self, params: &BTreeMap<String, String>) -> String {
        self.http
            .post(format!("{}/gateway.do", self.fake.base_url))
            .header(
                "Content-Type",
                "application/x-www-form-urlencoded;charset=utf-8",
            )
            .body(form(params))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Whether a notification's `sign` is `alipay_public_pem`'s signature of its sorted parameters.
pub fn verify_notification(alipay_public_pem: &str, params: &[(String, String)]) -> bool {
    let map: BTreeMap<String, String> = params.iter().cloned().collect();
    verifies(
        alipay_public_pem,
        &content(&map, &["sign", "sign_type"]),
        &map["sign"],
    )
}
