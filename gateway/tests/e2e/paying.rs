//! What payment tests share: a tenant with a WeChat Pay merchant and an Alipay app whose keys are
//! generated per test and known to the fake providers, a driver with a bill, and the GraphQL of
//! paying.

use minigate_fakes::{
    alipay::AlipayApp,
    keys::RsaPem,
    wechat_pay::{SignedCallback, WechatPayMerchant, WechatPaySigner},
};
use minigate_resolvers::{Role, tenant::db as tenant_db};
use minigate_store::Id;
use serde_json::{Value, json};

use crate::support::{TestApp, id_number};

pub const MCH_ID: &str = "1900009191";
pub const APP_ID: &str = "wxd678efh567hg6787";
pub const PUB_KEY_ID: &str = "PUB_KEY_ID_0119000091912024";
pub const MERCHANT_SERIAL: &str = "3775B6A45ACD588826D15E583A95F5DD3A1D4C5E";
pub const APIV3_KEY: &str = "k9Qv2Lm7Xp4Rt8Zw1Ny6Bc3Hd5Fg0Js2";
pub const ALIPAY_APP_ID: &str = "2021000122671234";
/// The serial of the platform certificate the merchant also accepts (a migration under way).
pub const PLATFORM_SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A72";

/// A tenant able to take payments, with an operator, a staff member, a driver and the driver's
/// WeChat sign-in.
pub struct Shop {
    pub admin: String,
    pub staff: String,
    pub driver: Id,
    pub driver_token: String,
    pub driver_openid: String,
    /// WeChat Pay's own key (the public-key mode), to sign forged or altered notifications.
    pub wxpay_key: RsaPem,
    pub alipay_key: RsaPem,
    /// The merchant's API key, whose public half checks `paySign`.
    pub merchant_key: RsaPem,
    /// The platform certificate's key, WeChat Pay's older way of signing.
    pub platform_key: RsaPem,
}

fn write(app: &TestApp, name: &str, text: &str) -> String {
    let path = app.dir.join(name);
    std::fs::write(&path, text).unwrap();
    format!("file:{}", path.display())
}

/// Configures the tenant's WeChat Pay merchant (public-key mode) and Alipay app, at the fakes
/// and in the database.
pub async fn merchant(app: &TestApp, tenant: Id) -> (RsaPem, RsaPem, RsaPem, RsaPem) {
    let merchant = RsaPem::generate();
    let wxpay = RsaPem::generate();
    let platform = RsaPem::generate();
    let certificate = platform.certificate(PLATFORM_SERIAL, "Tenpay.com Root CA");
    let alipay_app = RsaPem::generate();
    let alipay = RsaPem::generate();
    app.wxpay.add_merchant(WechatPayMerchant {
        mch_id: MCH_ID.into(),
        app_ids: vec![APP_ID.into()],
        merchant_serial: MERCHANT_SERIAL.into(),
        merchant_public_pem: merchant.public_pem.clone(),
        apiv3_key: APIV3_KEY.into(),
        signer: WechatPaySigner::PublicKey {
            id: PUB_KEY_ID.into(),
            private_pem: wxpay.private_pem.clone(),
        },
    });
    app.alipay.add_app(AlipayApp {
        app_id: ALIPAY_APP_ID.into(),
        app_public_pem: alipay_app.public_pem.clone(),
        alipay_private_pem: alipay.private_pem.clone(),
    });
    let mut tx = app.db().begin().await.unwrap();
    tenant_db::set_wechat_pay(
        &mut tx,
        &tenant_db::WechatPayRow {
            tenant_id: tenant,
            mch_id: MCH_ID.into(),
            sub_mch_id: String::new(),
            app_id: APP_ID.into(),
            merchant_serial: MERCHANT_SERIAL.into(),
            private_key_ref: write(app, "apiclient_key.pem", &merchant.private_pem),
            apiv3_key_ref: write(app, "apiv3.key", APIV3_KEY),
            public_key_id: Some(PUB_KEY_ID.into()),
            public_key_ref: Some(write(app, "wxpay_pub.pem", &wxpay.public_pem)),
            platform_certs_ref: Some(write(app, "platform_certs.pem", &certificate)),
        },
    )
    .await
    .unwrap();
    tenant_db::set_alipay(
        &mut tx,
        &tenant_db::AlipayRow {
            tenant_id: tenant,
            app_id: ALIPAY_APP_ID.into(),
            private_key_ref: write(app, "alipay_app_key.pem", &alipay_app.private_pem),
            alipay_public_key_ref: write(app, "alipay_pub.pem", &alipay.public_pem),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (wxpay, alipay, merchant, platform)
}

pub async fn shop(app: &TestApp, slug: &str) -> Shop {
    let (tenant, admin) = app.admin(slug).await;
    let branch = app.branch(tenant, "SZ").await;
    let (staff, _) = app
        .password_user(slug, tenant, Role::Staff, "13900000002", Some(branch))
        .await;
    let driver = app
        .driver(tenant, branch, "13800138000", &id_number(7))
        .await;
    app.mini_program(tenant, APP_ID).await;
    let openid = format!("o-{slug}-driver");
    let login = app.login_wechat(APP_ID, &openid).await;
    let token = login.ok()["loginWithWechat"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    // Bind the driver record through the phone WeChat reports.
    let phone_code = app.wechat.phone_code(APP_ID, "13800138000");
    let bound = app
        .gql(
            &token,
            "mutation($c: String!) { bindPhone(code: $c) { accessToken } }",
            json!({ "c": phone_code }),
        )
        .await;
    let driver_token = bound.ok()["bindPhone"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let (wxpay_key, alipay_key, merchant_key, platform_key) = merchant(app, tenant).await;
    Shop {
        admin,
        staff,
        driver,
        driver_token,
        driver_openid: openid,
        wxpay_key,
        alipay_key,
        merchant_key,
        platform_key,
    }
}

/// A rent bill of `fen` for the shop's driver.
pub async fn bill(app: &TestApp, shop: &Shop, fen: i64) -> String {
    let r = app
        .gql(
            &shop.admin,
            "mutation($i: CreateBillInput!) { createBill(input: $i) { id } }",
            json!({ "i": {
                "kind": "RENT", "title": "Rent, week 47", "amountFen": fen,
                "dueDate": "2026-11-30", "driverId": shop.driver.to_string()
            }}),
        )
        .await;
    r.ok()["createBill"]["id"].as_str().unwrap().to_owned()
}

pub const PAYMENT_FIELDS: &str = "id status amountFen outTradeNo codeUrl qrPng expiresAt paidAt channel wxPayParams { appId timeStamp nonceStr package signType paySign }";

pub async fn create_payment(
    app: &TestApp,
    token: &str,
    bill: &str,
    channel: &str,
) -> crate::support::Resp {
    app.gql(
        token,
        &format!("mutation($b: ID!, $c: PaymentChannel!) {{ createPayment(billId: $b, channel: $c) {{ {PAYMENT_FIELDS} }} }}"),
        json!({ "b": bill, "c": channel }),
    )
    .await
}

pub async fn payment(app: &TestApp, token: &str, id: &str) -> Value {
    let r = app
        .gql(
            token,
            &format!("query($id: ID!) {{ payment(id: $id) {{ {PAYMENT_FIELDS} }} }}"),
            json!({ "id": id }),
        )
        .await;
    r.ok()["payment"].clone()
}

/// Posts a WeChat Pay notification as WeChat would.
pub async fn post_wechat(app: &TestApp, cb: &SignedCallback) -> (u16, String) {
    let mut req = app
        .http
        .post(format!("{}/pay/wechat/notify", app.base))
        .body(cb.body.clone());
    for (k, v) in &cb.headers {
        req = req.header(k, v);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// Posts an Alipay notification (form parameters) as Alipay would.
pub async fn post_alipay(app: &TestApp, params: &[(String, String)]) -> (u16, String) {
    let res = app
        .http
        .post(format!("{}/pay/alipay/notify", app.base))
        .form(params)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

pub async fn scalar(app: &TestApp, sql: &'static str, id: &str) -> i64 {
    let mut c = app.db().conn().await.unwrap();
    minigate_store::fetch_scalar!(&mut c, i64, sql, id.parse::<Id>().unwrap()).unwrap()
}
