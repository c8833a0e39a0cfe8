//! The providers' cryptography against fixtures made independently (keys and a certificate by
//! openssl, an AES-GCM vector by Python's `cryptography`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use minigate_payments::{
    alipay::{self, AlipayKey, AppKey},
    pem,
    wechat::{
        resource,
        sign::MerchantKey,
        verify::{Signed, Verifier},
    },
};

const PLATFORM_KEY: &str = include_str!("fixtures/platform_key.pem");
const PLATFORM_PUB: &str = include_str!("fixtures/platform_pub.pem");
const PLATFORM_CERT: &str = include_str!("fixtures/platform_cert.pem");
const WXPAY_PRIVATE: &str = include_str!("fixtures/wxpay_pubkey_private.pem");
const WXPAY_PUB: &str = include_str!("fixtures/wxpay_pubkey.pem");
/// The serial openssl reports for the certificate fixture.
const CERT_SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A72";
const PUB_KEY_ID: &str = "PUB_KEY_ID_0119000001092024";

/// What WeChat Pay would do: sign `timestamp\nnonce\nbody\n` with its key.
fn wechat_signs(private_pem: &str, timestamp: &str, nonce: &str, body: &str) -> String {
    let key = RsaKeyPair::from_pkcs8(&pem::one(private_pem, "PRIVATE KEY").unwrap()).unwrap();
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        format!("{timestamp}\n{nonce}\n{body}\n").as_bytes(),
        &mut sig,
    )
    .unwrap();
    STANDARD.encode(sig)
}

fn verifier() -> Verifier {
    let mut v = Verifier::default();
    assert_eq!(
        v.add_platform_certificates(PLATFORM_CERT).unwrap(),
        vec![CERT_SERIAL.to_owned()]
    );
    v.add_public_key(PUB_KEY_ID, WXPAY_PUB).unwrap();
    v
}

#[test]
fn request_signatures_follow_the_documented_message_and_header() {
    let key = MerchantKey::from_pem("1900000109", "MERCHANTSERIAL01", PLATFORM_KEY).unwrap();
    let header = key
        .authorization(
            "GET",
            "/v3/pay/transactions/out-trade-no/MG1?mchid=1900000109",
            1_763_700_000,
            "n0nce",
            "",
        )
        .unwrap();
    assert!(header.starts_with(
        "WECHATPAY2-SHA256-RSA2048 mchid=\"1900000109\",nonce_str=\"n0nce\",signature=\""
    ));
    assert!(header.ends_with(",timestamp=\"1763700000\",serial_no=\"MERCHANTSERIAL01\""));
    let sig = header
        .split("signature=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let message =
        "GET\n/v3/pay/transactions/out-trade-no/MG1?mchid=1900000109\n1763700000\nn0nce\n\n";
    let public = pem::one(PLATFORM_PUB, "PUBLIC KEY").unwrap();
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
        .verify(message.as_bytes(), &STANDARD.decode(sig).unwrap())
        .expect("the signature verifies with the key openssl exported");
    let pay_sign = key
        .pay_sign(
            "wx8888888888888888",
            1_763_700_000,
            "n0nce",
            "prepay_id=wx201410272009395522657a690389285100",
        )
        .unwrap();
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
        .verify(
            b"wx8888888888888888\n1763700000\nn0nce\nprepay_id=wx201410272009395522657a690389285100\n",
            &STANDARD.decode(pay_sign).unwrap(),
        )
        .unwrap();
    assert!(!format!("{key:?}").contains("PRIVATE"));
}

#[test]
fn callbacks_verify_with_the_public_key_and_platform_certificates_at_once() {
    let v = verifier();
    let body = r#"{"id":"EV-2018022511223320873","event_type":"TRANSACTION.SUCCESS"}"#;
    let now = 1_763_700_000;
    for (serial, private) in [(CERT_SERIAL, PLATFORM_KEY), (PUB_KEY_ID, WXPAY_PRIVATE)] {
        let sig = wechat_signs(private, "1763700000", "abc", body);
        let signed = Signed {
            timestamp: "1763700000",
            nonce: "abc",
            signature: &sig,
            serial,
            body: body.as_bytes(),
        };
        v.verify(&signed, now).unwrap();
        // Any change to the body, the nonce or the serial's key is caught.
        let tampered = Signed {
            body: br#"{"id":"EV-2018022511223320873","event_type":"REFUND.SUCCESS"}"#,
            ..signed.clone()
        };
        assert_eq!(
            v.verify(&tampered, now).unwrap_err().code(),
            "PAYMENT_SIGNATURE_INVALID"
        );
        let other_nonce = Signed {
            nonce: "abd",
            ..signed.clone()
        };
        assert_eq!(
            v.verify(&other_nonce, now).unwrap_err().code(),
            "PAYMENT_SIGNATURE_INVALID"
        );
    }
    // Signed by one key but naming the other.
    let sig = wechat_signs(WXPAY_PRIVATE, "1763700000", "abc", body);
    let crossed = Signed {
        timestamp: "1763700000",
        nonce: "abc",
        signature: &sig,
        serial: CERT_SERIAL,
        body: body.as_bytes(),
    };
    assert_eq!(
        v.verify(&crossed, now).unwrap_err().code(),
        "PAYMENT_SIGNATURE_INVALID"
    );
    let unknown = Signed {
        serial: "PUB_KEY_ID_SOMEONE_ELSE",
        ..crossed.clone()
    };
    assert_eq!(
        v.verify(&unknown, now).unwrap_err().code(),
        "PAYMENT_UNKNOWN_SERIAL"
    );
}

#[test]
fn the_five_minute_window_applies_to_fresh_callbacks_only() {
    let v = verifier();
    let body = "{}";
    let sig = wechat_signs(PLATFORM_KEY, "1763700000", "n", body);
    let signed = Signed {
        timestamp: "1763700000",
        nonce: "n",
        signature: &sig,
        serial: CERT_SERIAL,
        body: body.as_bytes(),
    };
    v.verify(&signed, 1_763_700_000 + 300).unwrap();
    assert_eq!(
        v.verify(&signed, 1_763_700_000 + 301).unwrap_err().code(),
        "PAYMENT_TIMESTAMP_SKEW"
    );
    assert_eq!(
        v.verify(&signed, 1_763_700_000 - 301).unwrap_err().code(),
        "PAYMENT_TIMESTAMP_SKEW"
    );
    // A stored notification is re-verified later without the window.
    v.verify_stored(&signed).unwrap();
}

#[test]
fn resources_decrypt_with_the_apiv3_key_and_nothing_else() {
    // Made with Python's cryptography: AESGCM(key).encrypt(nonce, plaintext, aad).
    let ct = "DUcclrHBE5NffFMk6pzEyhUXulvgw9mRDQEaU1Z0/Pj0KAMJg8Q8RtmWasbJnrMZOdPEyT1VpxHn4MCfKtiVWtMoB4V+mi10OwF0TXwOS4JjdnKLnxK8uMzr+UjHXElQ";
    let key = b"0123456789abcdef0123456789abcdef";
    let plain = resource::decrypt(key, "fdasflkja484", "transaction", ct).unwrap();
    assert_eq!(
        String::from_utf8(plain).unwrap(),
        r#"{"out_trade_no":"MG20261121AB12","trade_state":"SUCCESS","amount":{"total":100}}"#
    );
    for (k, n, a) in [
        (
            &b"0123456789abcdef0123456789abcdeX"[..],
            "fdasflkja484",
            "transaction",
        ),
        (&key[..], "fdasflkja485", "transaction"),
        (&key[..], "fdasflkja484", "refund"),
    ] {
        assert_eq!(
            resource::decrypt(k, n, a, ct).unwrap_err().code(),
            "PAYMENT_DECRYPT_FAILED"
        );
    }
    assert_eq!(
        resource::decrypt(b"short", "fdasflkja484", "transaction", ct)
            .unwrap_err()
            .code(),
        "PAYMENT_KEY_INVALID"
    );
}

#[test]
fn alipay_signs_sorted_non_empty_parameters_and_verifies_notifications() {
    let mut p = BTreeMap::new();
    for (k, v) in [
        ("method", "alipay.trade.precreate"),
        ("app_id", "2021000000000001"),
        ("sign_type", "RSA2"),
        ("charset", "utf-8"),
        ("empty", ""),
        (
            "biz_content",
            r#"{"out_trade_no":"MG1","total_amount":"88.88"}"#,
        ),
    ] {
        p.insert(k.to_owned(), v.to_owned());
    }
    assert_eq!(
        alipay::signing_content(&p, &["sign"]),
        r#"app_id=2021000000000001&biz_content={"out_trade_no":"MG1","total_amount":"88.88"}&charset=utf-8&method=alipay.trade.precreate&sign_type=RSA2"#
    );
    // Alipay plays the other side with its own key pair: the fixture's.
    let app = AppKey::from_pem(WXPAY_PRIVATE).unwrap();
    let sign = app.sign_request(&p).unwrap();
    let alipay_key = AlipayKey::from_pem(WXPAY_PUB).unwrap();
    alipay_key
        .verify_response(&alipay::signing_content(&p, &["sign"]), &sign)
        .unwrap();

    // A notification: signed without sign and sign_type.
    let mut n = BTreeMap::new();
    for (k, v) in [
        ("notify_id", "ac05099524730693a8b330c5ecf72da9786"),
        ("out_trade_no", "MG1"),
        ("total_amount", "88.88"),
        ("trade_status", "TRADE_SUCCESS"),
        ("app_id", "2021000000000001"),
    ] {
        n.insert(k.to_owned(), v.to_owned());
    }
    let key = RsaKeyPair::from_pkcs8(&pem::one(WXPAY_PRIVATE, "PRIVATE KEY").unwrap()).unwrap();
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        alipay::signing_content(&n, &[]).as_bytes(),
        &mut sig,
    )
    .unwrap();
    n.insert("sign".into(), STANDARD.encode(sig));
    n.insert("sign_type".into(), "RSA2".into());
    alipay_key.verify_notification(&n).unwrap();
    n.insert("total_amount".into(), "0.01".into());
    assert_eq!(
        alipay_key.verify_notification(&n).unwrap_err().code(),
        "PAYMENT_SIGNATURE_INVALID"
    );
    n.remove("sign");
    assert_eq!(
        alipay_key.verify_notification(&n).unwrap_err().code(),
        "PAYMENT_SIGNATURE_INVALID"
    );
}

#[test]
fn unreadable_keys_are_refused_with_a_code() {
    assert_eq!(
        MerchantKey::from_pem("1", "S", "not a pem")
            .unwrap_err()
            .code(),
        "PAYMENT_KEY_INVALID"
    );
    assert_eq!(
        MerchantKey::from_pem("1", "S", PLATFORM_CERT)
            .unwrap_err()
            .code(),
        "PAYMENT_KEY_INVALID"
    );
    let mut v = Verifier::default();
    assert!(v.add_public_key("NOT_AN_ID", WXPAY_PUB).is_err());
    assert!(v.add_platform_certificates(WXPAY_PUB).is_err());
    assert!(
        v.add_platform_certificates("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----")
            .is_err()
    );
}
