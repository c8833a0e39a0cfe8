//! The `APP` channel: a message goes to every device the person registered, each through its
//! provider with the company's credentials there.
//!
//! * Sent when at least one device took it (the others' failures are logged, not retried: the
//!   person has the message).
//! * Otherwise worth a later try when any device's provider said so, an operator's business when
//!   a provider refused the company's credentials, and refused for good (the next channel's
//!   turn) when every device was refused or there is none.
//! * A token the provider disowns is removed for that provider and environment, whatever became
//!   of the message.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures_util::future::join_all;
use minigate_push::{
    app::{AppMessage, DeviceAnswer, Environment, Provider},
    delivery::Delivery,
    outcome::SendOutcome,
};
use minigate_store::Id;
use serde_json::Value;

use super::{memo::Memo, route::Kind};
use crate::{
    Deps,
    device::{
        db::{self as device_db, DeviceRow},
        providers::{self, Credentials},
    },
};

/// How long a company's provider credentials are used before they are read again.
const CREDENTIALS_TTL: Duration = Duration::from_secs(30);
/// How long a wave's device lookup stands in for a query of one's own.
const DEVICES_TTL: Duration = Duration::from_secs(10);

pub struct AppSender {
    deps: Deps,
    credentials: Memo<(Id, Provider), Result<Arc<Credentials>, SendOutcome>>,
    devices: Memo<Id, Arc<Vec<DeviceRow>>>,
}

fn store_failure(e: impl std::fmt::Display) -> SendOutcome {
    SendOutcome::Transient {
        code: "STORE".to_owned(),
        detail: e.to_string(),
        retry_after: None,
    }
}

impl AppSender {
    pub fn new(deps: Deps) -> Self {
        AppSender {
            deps,
            credentials: Memo::new(CREDENTIALS_TTL),
            devices: Memo::new(DEVICES_TTL),
        }
    }

    /// Reads the devices of a wave's app messages in one query.
    pub async fn prepare(&self, wave: &[Arc<Delivery>]) -> crate::Result<()> {
        let users: Vec<Id> = wave
            .iter()
            .filter(|d| d.channel == minigate_push::delivery::Channel::App.as_str())
            .map(|d| d.user_id)
            .collect();
        if users.is_empty() {
            return Ok(());
        }
        let mut c = self.deps.db.conn().await?;
        let mut found: HashMap<Id, Vec<DeviceRow>> = HashMap::new();
        for row in device_db::of_users(&mut c, users.clone()).await? {
            found.entry(row.user_id).or_default().push(row);
        }
        for user in users {
            let rows = found.remove(&user).unwrap_or_default();
            self.devices.put(user, Arc::new(rows));
        }
        Ok(())
    }

    async fn devices_of(&self, user: Id) -> Result<Arc<Vec<DeviceRow>>, SendOutcome> {
        if let Some(rows) = self.devices.get(&user) {
            return Ok(rows);
        }
        let mut c = self.deps.db.conn().await.map_err(store_failure)?;
        let rows = Arc::new(
            device_db::of_user(&mut c, user)
                .await
                .map_err(store_failure)?,
        );
        self.devices.put(user, rows.clone());
        Ok(rows)
    }

    async fn credentials(
        &self,
        tenant: Id,
        provider: Provider,
    ) -> Result<Arc<Credentials>, SendOutcome> {
        let key = (tenant, provider);
        if let Some(known) = self.credentials.get(&key) {
            return known;
        }
        let mut c = self.deps.db.conn().await.map_err(store_failure)?;
        let row = providers::find(&mut c, tenant, provider)
            .await
            .map_err(store_failure)?;
        drop(c);
        let result = match row {
            None => Err(SendOutcome::Permanent {
                code: "PROVIDER_NOT_CONFIGURED".to_owned(),
                detail: format!("the company has no {} credentials", provider.as_str()),
            }),
            Some(row) => providers::credentials(self.deps.secrets.as_ref(), &row)
                .map(Arc::new)
                .map_err(|e| SendOutcome::Credential {
                    code: e.code().to_owned(),
                    detail: e.to_string(),
                }),
        };
        self.credentials.put(key, result.clone());
        result
    }

    async fn send_one(&self, d: &Delivery, device: &DeviceRow, msg: &AppMessage) -> DeviceAnswer {
        let kept = |outcome| DeviceAnswer {
            outcome,
            token_gone: false,
        };
        let (Some(provider), Some(env)) = (device.provider(), device.environment()) else {
            return kept(SendOutcome::Permanent {
                code: "DEVICE_UNKNOWN_PROVIDER".to_owned(),
                detail: device.provider.clone(),
            });
        };
        let creds = match self.credentials(d.tenant_id, provider).await {
            Ok(c) => c,
            Err(outcome) => return kept(outcome),
        };
        let push = &self.deps.app_push;
        match (creds.as_ref(), provider) {
            (Credentials::Fcm(account), Provider::Fcm) => {
                push.fcm.send(account, &device.token, msg).await
            }
            (Credentials::Apns(key), Provider::Apns) => {
                push.apns.send(key, env, &device.token, msg).await
            }
            (Credentials::Huawei(app), Provider::Huawei) if env == Environment::Production => {
                push.huawei.send(app, &device.token, msg).await
            }
            _ => kept(SendOutcome::Permanent {
                code: "DEVICE_UNKNOWN_PROVIDER".to_owned(),
                detail: format!("{} {}", device.provider, device.environment),
            }),
        }
    }

    pub async fn send(&self, d: &Delivery) -> SendOutcome {
        let devices = match self.devices_of(d.user_id).await {
            Ok(rows) => rows,
            Err(outcome) => return outcome,
        };
        if devices.is_empty() {
            return SendOutcome::Permanent {
                code: "NO_DEVICE".to_owned(),
                detail: "no app device registered".to_owned(),
            };
        }
        let msg = message(d);
        let answers = join_all(devices.iter().map(|dev| self.send_one(d, dev, &msg))).await;
        let gone: Vec<&DeviceRow> = devices
            .iter()
            .zip(&answers)
            .filter(|(_, a)| a.token_gone)
            .map(|(dev, _)| dev)
            .collect();
        if !gone.is_empty() {
            self.forget(d.user_id, &devices, &gone).await;
        }
        combine(answers.into_iter().map(|a| a.outcome).collect())
    }

    /// Removes tokens their provider disowned; a failure only means the next message tries
    /// them again.
    async fn forget(&self, user: Id, devices: &[DeviceRow], gone: &[&DeviceRow]) {
        let removed = async {
            let mut c = self.deps.db.conn().await?;
            for dev in gone {
                device_db::remove_token(&mut c, &dev.provider, &dev.environment, &dev.token)
                    .await?;
                tracing::info!(user = %user, provider = %dev.provider, environment = %dev.environment,
                    "removed a push token its provider disowned");
            }
            Ok::<(), crate::Error>(())
        };
        if let Err(e) = removed.await {
            tracing::warn!(error = %e, "removing disowned push tokens failed");
        }
        // The wave's copy would still list them for the person's next message.
        let left = devices
            .iter()
            .filter(|dev| !gone.iter().any(|g| g.id == dev.id))
            .cloned()
            .collect();
        self.devices.put(user, Arc::new(left));
    }
}

/// One outcome for the message from its devices' outcomes.
fn combine(outcomes: Vec<SendOutcome>) -> SendOutcome {
    let mut best: Option<SendOutcome> = None;
    let rank = |o: &SendOutcome| match o {
        SendOutcome::Sent { .. } => 3,
        SendOutcome::Transient { .. } => 2,
        SendOutcome::Credential { .. } => 1,
        SendOutcome::Permanent { .. } => 0,
    };
    let mut longest_wait: Option<Duration> = None;
    for o in outcomes {
        if let SendOutcome::Transient {
            retry_after: Some(w),
            ..
        } = &o
        {
            longest_wait = Some(longest_wait.map_or(*w, |l| l.max(*w)));
        }
        if best.as_ref().is_none_or(|b| rank(&o) > rank(b)) {
            best = Some(o);
        }
    }
    match best {
        Some(SendOutcome::Transient { code, detail, .. }) => SendOutcome::Transient {
            code,
            detail,
            retry_after: longest_wait,
        },
        Some(o) => o,
        None => SendOutcome::Permanent {
            code: "NO_DEVICE".to_owned(),
            detail: "no app device registered".to_owned(),
        },
    }
}

fn field<'a>(payload: &'a Value, name: &str) -> &'a str {
    payload
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The notification's words per kind, from the message's payload, and the payload's fields as
/// the data the app opens it with.
pub fn message(d: &Delivery) -> AppMessage {
    let p = &d.payload.0;
    let f = |name| field(p, name);
    let kind = Kind::parse(&d.kind);
    let (title, body) = match kind {
        Some(Kind::Notice) => (f("title").to_owned(), f("excerpt").to_owned()),
        Some(Kind::Payment) => (
            "付款成功".to_owned(),
            format!("{} 已收到 {}", f("title"), f("amount")),
        ),
        Some(Kind::RentDue) => (
            "租金即将到期".to_owned(),
            format!("{} {},{} 到期", f("title"), f("amount"), f("dueDate")),
        ),
        Some(Kind::Violation) => (
            "违章提醒".to_owned(),
            format!(
                "{} {} 在{}:{},罚款 {},记 {} 分",
                f("plate"),
                f("at"),
                f("place"),
                f("description"),
                f("fine"),
                f("points")
            ),
        ),
        Some(Kind::Accident) => (
            "事故处理进度".to_owned(),
            format!("{} 的事故:{}", f("plate"), f("status")),
        ),
        None => (d.kind.clone(), String::new()),
    };
    let mut data: std::collections::BTreeMap<String, String> = p
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    data.insert("kind".to_owned(), d.kind.clone());
    data.insert("deliveryId".to_owned(), d.id.to_string());
    AppMessage {
        id: d.id.to_string(),
        title,
        body,
        data,
        collapse_key: None,
        urgent: kind.is_some_and(|k| k.class() == minigate_push::delivery::Class::Essential),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient(code: &str, secs: Option<u64>) -> SendOutcome {
        SendOutcome::Transient {
            code: code.to_owned(),
            detail: String::new(),
            retry_after: secs.map(Duration::from_secs),
        }
    }

    fn permanent(code: &str) -> SendOutcome {
        SendOutcome::Permanent {
            code: code.to_owned(),
            detail: String::new(),
        }
    }

    #[test]
    fn one_device_that_took_it_is_enough() {
        let sent = SendOutcome::Sent {
            provider_msg_id: Some("m".into()),
        };
        let o = combine(vec![
            permanent("APNS_Unregistered"),
            sent.clone(),
            transient("HTTP_503", None),
        ]);
        assert_eq!(o, sent);
    }

    #[test]
    fn otherwise_a_retry_waits_for_the_longest_provider() {
        let o = combine(vec![
            transient("FCM_QUOTA_EXCEEDED", Some(30)),
            permanent("FCM_UNREGISTERED"),
            transient("APNS_TooManyRequests", Some(90)),
        ]);
        let SendOutcome::Transient { retry_after, .. } = o else {
            panic!("{o:?}");
        };
        assert_eq!(retry_after, Some(Duration::from_secs(90)));
    }

    #[test]
    fn refused_everywhere_falls_through_and_credentials_come_before_that() {
        assert_eq!(
            combine(vec![permanent("A"), permanent("B")]).kind(),
            "PERMANENT"
        );
        let credential = SendOutcome::Credential {
            code: "APNS_InvalidProviderToken".into(),
            detail: String::new(),
        };
        assert_eq!(
            combine(vec![permanent("A"), credential.clone()]),
            credential
        );
        assert_eq!(combine(Vec::new()).code(), "NO_DEVICE");
    }
}
