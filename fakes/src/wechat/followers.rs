//! Official-account followers: `cgi-bin/user/get` (the follower list, in pages) and
//! `cgi-bin/user/info/batchget` (what WeChat tells of up to 100 openids at once).
//!
//! `user/get` pages by 10,000 openids (configurable here). Each page's `next_openid` is its last
//! openid, which the next call passes back; the call after the last page answers `count: 0`,
//! no `data` and an empty `next_openid`. An openid that never followed is refused as a cursor
//! (40003). `batchget` takes 1 to 100 openids (40032 otherwise); an openid unknown to the account
//! is 40003, one that does not follow (any more) answers `subscribe: 0` and nothing else.

use std::collections::HashMap;

use poem::http::Method;
use serde_json::{Value, json};

use super::{Answer, FakeWechat, State, unix_now};

/// WeChat's page size for `user/get`.
const USER_GET_PAGE: usize = 10_000;
/// The most openids one `user/info/batchget` takes.
const BATCHGET_MAX: usize = 100;

pub(super) struct Followers {
    by_app: HashMap<String, AppFollowers>,
    page_size: usize,
}

impl Default for Followers {
    fn default() -> Followers {
        Followers {
            by_app: HashMap::new(),
            page_size: USER_GET_PAGE,
        }
    }
}

#[derive(Default)]
struct AppFollowers {
    /// every openid that ever followed, in the order they first did (the list's order)
    order: Vec<String>,
    by_openid: HashMap<String, Follower>,
}

struct Follower {
    unionid: Option<String>,
    following: bool,
    /// the last time they followed
    subscribe_time: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FollowState {
    Following,
    /// a user of the app, or a former follower
    NotFollowing,
    /// not an openid of this app
    Unknown,
}

impl FakeWechat {
    /// The user follows this official account (again), now; their unionid is given when the
    /// account is bound to an open-platform account.
    pub fn add_follower(&self, app_id: &str, openid: &str, unionid: Option<&str>) {
        let mut state = self.state();
        state.add_user(app_id, openid);
        let app = state.followers.by_app.entry(app_id.to_owned()).or_default();
        if !app.by_openid.contains_key(openid) {
            app.order.push(openid.to_owned());
        }
        app.by_openid.insert(
            openid.to_owned(),
            Follower {
                unionid: unionid.map(str::to_owned),
                following: true,
                subscribe_time: unix_now(),
            },
        );
    }

    /// The follower unfollows: gone from `user/get`, `subscribe: 0` in `batchget`, template
    /// messages to them answer 43004. An openid that never followed becomes a known
    /// non-follower.
    pub fn unfollow(&self, app_id: &str, openid: &str) {
        let mut state = self.state();
        state.add_user(app_id, openid);
        if let Some(follower) = state
            .followers
            .by_app
            .get_mut(app_id)
            .and_then(|app| app.by_openid.get_mut(openid))
        {
            follower.following = false;
        }
    }

    /// How many openids one `user/get` page holds (WeChat: 10,000; at least 1).
    pub fn set_user_list_page_size(&self, page_size: usize) {
        self.state().followers.page_size = page_size.max(1);
    }
}

impl State {
    pub(super) fn follow_state(&self, app_id: &str, openid: &str) -> FollowState {
        let follower = self
            .followers
            .by_app
            .get(app_id)
            .and_then(|app| app.by_openid.get(openid));
        match follower {
            Some(f) if f.following => FollowState::Following,
            Some(_) => FollowState::NotFollowing,
            None if self.is_user(app_id, openid) => FollowState::NotFollowing,
            None => FollowState::Unknown,
        }
    }

    pub(super) fn user_get(&self, method: &Method, query: &HashMap<String, String>) -> Answer {
        if method != Method::GET {
            return Err(43001);
        }
        let app_id = self.token_app(query)?;
        let empty = AppFollowers::default();
        let app = self.followers.by_app.get(&app_id).unwrap_or(&empty);
        let start = match query.get("next_openid").filter(|o| !o.is_empty()) {
            None => 0,
            Some(cursor) => app.order.iter().position(|o| o == cursor).ok_or(40003)? + 1,
        };
        let following = |openid: &&String| app.by_openid.get(*openid).is_some_and(|f| f.following);
        let total = app.order.iter().filter(following).count();
        let page: Vec<&String> = app
            .order
            .iter()
            .skip(start)
            .filter(following)
            .take(self.followers.page_size)
            .collect();
        Ok(match page.last() {
            None => json!({ "total": total, "count": 0, "next_openid": "" }),
            Some(last) => json!({
                "total": total,
                "count": page.len(),
                "data": { "openid": page },
                "next_openid": last,
            }),
        })
    }

    pub(super) fn user_batchget(
        &self,
        method: &Method,
        query: &HashMap<String, String>,
        body: &[u8],
    ) -> Answer {
        let (app_id, body) = self.authorized_post(method, query, body)?;
        let list = body
            .get("user_list")
            .and_then(Value::as_array)
            .ok_or(47001)?;
        if list.is_empty() || list.len() > BATCHGET_MAX {
            return Err(40032);
        }
        let infos = list
            .iter()
            .map(|item| {
                let openid = item
                    .get("openid")
                    .and_then(Value::as_str)
                    .filter(|o| !o.is_empty())
                    .ok_or(40003)?;
                self.user_info(&app_id, openid)
            })
            .collect::<Result<Vec<Value>, i64>>()?;
        Ok(json!({ "user_info_list": infos }))
    }

    fn user_info(&self, app_id: &str, openid: &str) -> Result<Value, i64> {
        let follower = self
            .followers
            .by_app
            .get(app_id)
            .and_then(|app| app.by_openid.get(openid))
            .filter(|f| f.following);
        let Some(follower) = follower else {
            return match self.follow_state(app_id, openid) {
                FollowState::Unknown => Err(40003),
                _ => Ok(json!({ "subscribe": 0, "openid": openid })),
            };
        };
        // Since 2021-12-27 WeChat no longer gives nicknames or avatars here.
        let mut info = json!({
            "subscribe": 1,
            "openid": openid,
            "language": "zh_CN",
            "subscribe_time": follower.subscribe_time,
            "remark": "",
            "groupid": 0,
            "tagid_list": [],
            "subscribe_scene": "ADD_SCENE_QR_CODE",
            "qr_scene": 0,
            "qr_scene_str": "",
        });
        if let (Some(unionid), Some(obj)) = (&follower.unionid, info.as_object_mut()) {
            obj.insert("unionid".to_owned(), Value::from(unionid.as_str()));
        }
        Ok(info)
    }
}
