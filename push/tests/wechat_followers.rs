//! An official account's followers through the WeChat client against the fake WeChat server:
//! the list in pages, what `user/info/batchget` tells of them, and what WeChat's refusals come
//! to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use minigate_fakes::wechat::{Failure, FakeWechat, routes};
use minigate_push::wechat::followers::BATCHGET_MAX;
use minigate_push::wechat::{AppCredentials, TokenStore, WechatClient, WechatConfig};
use secrecy::SecretString;

const OA: &str = "wx_oa_fleet";
const OA_SECRET: &str = "oa-secret";

fn oa() -> AppCredentials {
    AppCredentials {
        app_id: OA.to_owned(),
        secret: SecretString::from(OA_SECRET),
    }
}

fn client(api_base: &str) -> WechatClient {
    let config = WechatConfig {
        api_base: api_base.to_owned(),
        timeout: Duration::from_secs(5),
    };
    WechatClient::new(config, TokenStore::local()).unwrap()
}

async fn fake_with_followers(n: usize) -> FakeWechat {
    let fake = FakeWechat::start().await;
    fake.add_app(OA, OA_SECRET);
    for i in 0..n {
        fake.add_follower(OA, &format!("oa-{i:04}"), Some(&format!("union-{i:04}")));
    }
    fake
}

#[tokio::test]
async fn the_follower_list_is_read_page_by_page_until_the_empty_page() {
    let fake = fake_with_followers(5).await;
    fake.set_user_list_page_size(2);
    let wechat = client(&fake.base_url);

    let mut cursor = String::new();
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let page = wechat.user_get(&oa(), &cursor).await.unwrap();
        assert_eq!(page.total, 5);
        assert_eq!(page.count, u64::try_from(page.openids.len()).unwrap());
        pages += 1;
        if page.is_last() {
            assert_eq!(page.next_openid, "");
            break;
        }
        assert_eq!(page.next_openid, *page.openids.last().unwrap());
        cursor = page.next_openid.clone();
        all.extend(page.openids);
    }
    assert_eq!(pages, 4, "three pages of followers and the empty one");
    let expected: Vec<String> = (0..5).map(|i| format!("oa-{i:04}")).collect();
    assert_eq!(all, expected);
    // One token for every call.
    assert_eq!(fake.calls(routes::STABLE_TOKEN), 1);
}

#[tokio::test]
async fn batchget_tells_unionids_and_who_left_in_calls_of_at_most_100() {
    let fake = fake_with_followers(250).await;
    fake.unfollow(OA, "oa-0007");
    let wechat = client(&fake.base_url);
    let openids: Vec<String> = (0..250).map(|i| format!("oa-{i:04}")).collect();

    let infos = wechat.user_info_batchget(&oa(), &openids).await.unwrap();
    assert_eq!(infos.len(), 250);
    assert_eq!(
        fake.calls(routes::USER_INFO_BATCHGET),
        250_usize.div_ceil(BATCHGET_MAX)
    );
    for (info, openid) in infos.iter().zip(&openids) {
        assert_eq!(&info.openid, openid);
    }
    let first = &infos[0];
    assert!(first.subscribed);
    assert_eq!(first.unionid.as_deref(), Some("union-0000"));
    assert!(first.subscribe_time.is_some());
    let left = &infos[7];
    assert!(!left.subscribed);
    assert_eq!((left.unionid.as_deref(), left.subscribe_time), (None, None));

    // Nothing to ask about: no call.
    assert!(
        wechat
            .user_info_batchget(&oa(), &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(fake.calls(routes::USER_INFO_BATCHGET), 3);
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_call_made_again() {
    let fake = fake_with_followers(3).await;
    let wechat = client(&fake.base_url);
    wechat.user_get(&oa(), "").await.unwrap();
    assert_eq!(fake.calls(routes::STABLE_TOKEN), 1);

    fake.expire_access_token(OA);
    let page = wechat.user_get(&oa(), "").await.unwrap();
    assert_eq!(page.openids.len(), 3);
    assert_eq!(fake.calls(routes::STABLE_TOKEN), 2);
    assert_eq!(fake.calls(routes::USER_GET), 3);

    fake.expire_access_tokens();
    let infos = wechat
        .user_info_batchget(&oa(), &page.openids)
        .await
        .unwrap();
    assert_eq!(infos.len(), 3);
    assert_eq!(fake.calls(routes::STABLE_TOKEN), 3);
    assert_eq!(fake.calls(routes::USER_INFO_BATCHGET), 2);
}

#[tokio::test]
async fn a_token_rejected_again_after_its_refresh_is_not_refreshed_again() {
    let fake = fake_with_followers(1).await;
    let wechat = client(&fake.base_url);
    fake.fail_route(routes::USER_GET, 2, Failure::Errcode(40001));

    let e = wechat.user_get(&oa(), "").await.unwrap_err();
    assert_eq!(e.code(), "UPSTREAM_UNAVAILABLE");
    assert!(e.is_transient());
    assert_eq!(fake.calls(routes::STABLE_TOKEN), 2);
    assert_eq!(fake.calls(routes::USER_GET), 2);
}

#[tokio::test]
async fn wechat_busy_or_unreachable_is_transient_and_unverified_is_configuration() {
    let fake = fake_with_followers(2).await;
    let wechat = client(&fake.base_url);
    let openids = vec!["oa-0000".to_owned()];

    fake.fail_route(routes::USER_INFO_BATCHGET, 1, Failure::Errcode(-1));
    let e = wechat
        .user_info_batchget(&oa(), &openids)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "UPSTREAM_UNAVAILABLE");
    assert!(e.is_transient());

    fake.fail_route(
        routes::USER_GET,
        1,
        Failure::Http {
            status: 503,
            retry_after_secs: None,
        },
    );
    let e = wechat.user_get(&oa(), "").await.unwrap_err();
    assert!(e.is_transient(), "{e}");

    // An account whose API permission is missing (not a verified service account).
    fake.fail_route(routes::USER_GET, 1, Failure::Errcode(48001));
    let e = wechat.user_get(&oa(), "").await.unwrap_err();
    assert_eq!(e.code(), "WECHAT_CONFIG_INVALID");
    assert!(!e.is_transient());

    // A cursor WeChat does not know.
    let e = wechat.user_get(&oa(), "never-followed").await.unwrap_err();
    assert_eq!(e.code(), "UPSTREAM_UNAVAILABLE");

    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let e = client(&format!("http://{addr}"))
        .user_get(&oa(), "")
        .await
        .unwrap_err();
    assert!(e.is_transient());
    assert!(!format!("{e:?}").contains(OA_SECRET), "{e:?}");
}
