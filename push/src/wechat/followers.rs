//! An official account's followers: `cgi-bin/user/get` lists their openids in pages, and
//! `cgi-bin/user/info/batchget` tells of up to 100 of them at once whether they still follow,
//! since when, and their unionid (when the account is bound to an open-platform account), which
//! is what maps a mini-program user to the openid a template message goes to.
//!
//! Both calls use the account's access token like every call; a token WeChat rejects (40001,
//! 40014, 42001) is replaced once and the call made once more. Refusals become this crate's
//! [`Error`]s: the account's credentials or permissions (48001: the API is not granted, e.g. an
//! unverified account) are [`Error::WechatConfig`]; anything else, including a token rejected
//! again right after its refresh, is [`Error::Upstream`], worth trying later.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Api, AppCredentials, WechatClient, classify};
use crate::Result;

/// The most openids one `user/info/batchget` takes.
pub const BATCHGET_MAX: usize = 100;

/// One page of `user/get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPage {
    /// How many followers the account has (all pages).
    pub total: u64,
    /// How many openids this page holds.
    pub count: u64,
    pub openids: Vec<String>,
    /// The cursor for the next page: this page's last openid. Empty after the last page (WeChat
    /// answers the call after the last page with `count: 0`).
    pub next_openid: String,
}

impl UserPage {
    /// Nothing more to read after this page.
    pub fn is_last(&self) -> bool {
        self.openids.is_empty() || self.next_openid.is_empty()
    }
}

/// What `user/info/batchget` tells of one openid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerInfo {
    pub openid: String,
    /// Whether they follow the account now; WeChat says nothing more of one who does not.
    pub subscribed: bool,
    /// Only when the account is bound to an open-platform account.
    pub unionid: Option<String>,
    /// When they last followed.
    pub subscribe_time: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct UserGetAnswer {
    #[serde(default)]
    total: u64,
    #[serde(default)]
    count: u64,
    #[serde(default)]
    data: Option<OpenidList>,
    #[serde(default)]
    next_openid: Option<String>,
}

#[derive(Deserialize)]
struct OpenidList {
    #[serde(default)]
    openid: Vec<String>,
}

#[derive(Deserialize)]
struct BatchgetAnswer {
    #[serde(default)]
    user_info_list: Vec<UserInfo>,
}

#[derive(Deserialize)]
struct UserInfo {
    openid: String,
    #[serde(default)]
    subscribe: i64,
    #[serde(default)]
    unionid: Option<String>,
    #[serde(default)]
    subscribe_time: Option<i64>,
}

impl From<UserInfo> for FollowerInfo {
    fn from(u: UserInfo) -> Self {
        let subscribed = u.subscribe == 1;
        FollowerInfo {
            openid: u.openid,
            subscribed,
            unionid: u.unionid.filter(|id| !id.is_empty()),
            subscribe_time: u
                .subscribe_time
                .filter(|_| subscribed)
                .and_then(|secs| DateTime::from_timestamp(secs, 0)),
        }
    }
}

impl WechatClient {
    /// One page of the account's followers, starting after `next_openid` (empty for the first
    /// page). WeChat pages by 10,000.
    pub async fn user_get(&self, app: &AppCredentials, next_openid: &str) -> Result<UserPage> {
        let url = format!("{}/cgi-bin/user/get", self.base);
        let answer: UserGetAnswer = self
            .call_with_token(app, Api::UserGet, |token| {
                self.http.get(&url).query(&[
                    ("access_token", token.expose_secret()),
                    ("next_openid", next_openid),
                ])
            })
            .await?;
        let openids = answer.data.map(|d| d.openid).unwrap_or_default();
        Ok(UserPage {
            total: answer.total,
            count: answer.count,
            next_openid: if openids.is_empty() {
                String::new()
            } else {
                answer.next_openid.unwrap_or_default()
            },
            openids,
        })
    }

    /// What WeChat tells of these openids, in their order: one call per [`BATCHGET_MAX`] of them
    /// (none for an empty list).
    pub async fn user_info_batchget(
        &self,
        app: &AppCredentials,
        openids: &[String],
    ) -> Result<Vec<FollowerInfo>> {
        let url = format!("{}/cgi-bin/user/info/batchget", self.base);
        let mut infos = Vec::with_capacity(openids.len());
        for chunk in openids.chunks(BATCHGET_MAX) {
            let body = serde_json::json!({
                "user_list": chunk
                    .iter()
                    .map(|openid| serde_json::json!({ "openid": openid, "lang": "zh_CN" }))
                    .collect::<Vec<_>>(),
            });
            let answer: BatchgetAnswer = self
                .call_with_token(app, Api::UserInfoBatchget, |token| {
                    self.http
                        .post(&url)
                        .query(&[("access_token", token.expose_secret())])
                        .json(&body)
                })
                .await?;
            infos.extend(answer.user_info_list.into_iter().map(FollowerInfo::from));
        }
        Ok(infos)
    }

    /// Sends the request `build` makes with the app's access token; a token WeChat rejects is
    /// replaced once (see [`WechatClient::replace_rejected_token`]) and the request sent again.
    async fn call_with_token<T: DeserializeOwned>(
        &self,
        app: &AppCredentials,
        api: Api,
        build: impl Fn(&SecretString) -> reqwest::RequestBuilder,
    ) -> Result<T> {
        let mut token = self.access_token(app).await?;
        let mut refreshed = false;
        loop {
            match self.send(api, build(&token)).await? {
                Ok(answer) => return Ok(answer),
                Err(f) if f.is_token_rejected() && !refreshed => {
                    tracing::info!(app_id = %app.app_id, errcode = f.errcode,
                        service = api.service(),
                        "wechat rejected the cached access token; refreshing");
                    token = self.replace_rejected_token(app, &token).await?;
                    refreshed = true;
                }
                Err(f) => {
                    tracing::warn!(app_id = %app.app_id, errcode = f.errcode, errmsg = %f.errmsg,
                        service = api.service(), "wechat refused");
                    return Err(classify(api, f));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_answer;
    use super::*;

    #[test]
    fn a_user_get_page_is_read_with_its_cursor() {
        let a: UserGetAnswer = parse_answer(
            Api::UserGet,
            br#"{"total":3,"count":2,"data":{"openid":["o1","o2"]},"next_openid":"o2"}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!((a.total, a.count), (3, 2));
        assert_eq!(a.data.unwrap().openid, ["o1", "o2"]);
        assert_eq!(a.next_openid.as_deref(), Some("o2"));
    }

    #[test]
    fn the_page_after_the_last_has_no_data() {
        let a: UserGetAnswer =
            parse_answer(Api::UserGet, br#"{"total":3,"count":0,"next_openid":""}"#)
                .unwrap()
                .unwrap();
        assert!(a.data.is_none());
    }

    #[test]
    fn user_info_keeps_unionid_and_time_only_of_followers() {
        let a: BatchgetAnswer = parse_answer(
            Api::UserInfoBatchget,
            br#"{"user_info_list":[
                {"subscribe":1,"openid":"o1","subscribe_time":1700000000,"unionid":"u1","language":"zh_CN"},
                {"subscribe":1,"openid":"o2","subscribe_time":1700000001,"unionid":""},
                {"subscribe":0,"openid":"o3"}
            ]}"#,
        )
        .unwrap()
        .unwrap();
        let infos: Vec<FollowerInfo> = a
            .user_info_list
            .into_iter()
            .map(FollowerInfo::from)
            .collect();
        assert_eq!(
            infos[0],
            FollowerInfo {
                openid: "o1".into(),
                subscribed: true,
                unionid: Some("u1".into()),
                subscribe_time: DateTime::from_timestamp(1_700_000_000, 0),
            }
        );
        assert_eq!(infos[1].unionid, None);
        assert!(!infos[2].subscribed);
        assert_eq!(infos[2].subscribe_time, None);
    }

    #[test]
    fn an_unverified_account_is_a_configuration_problem_other_refusals_pass() {
        let f = |errcode| super::super::WxFailure {
            errcode,
            errmsg: String::new(),
        };
        assert_eq!(
            classify(Api::UserGet, f(48001)).code(),
            "WECHAT_CONFIG_INVALID"
        );
        for errcode in [-1, 40003, 45009, 40001] {
            let e = classify(Api::UserInfoBatchget, f(errcode));
            assert!(e.is_transient(), "{errcode}");
        }
    }
}
