//! `createPayment`: a bill's one open order on the channel the counter or the payer chose.
//!
//! The order row is written before the provider hears of it, so a callback always finds it.
//! Switching channel closes the previous order at its provider first; if that one turns out
//! paid, it is credited and returned instead of opening another.

use chrono::{Duration, Utc};
use minigate_payments::{
    orders::{self, Channel, OrderRow, db::NewOrderRow},
    trade::{NewOrder, new_out_trade_no},
    wechat::client::Opened,
};
use minigate_store::Id;

use super::{db, sync::close_everywhere};
use crate::{Deps, Error, Result, Viewer};

/// An open order is handed out again only if it stays payable at least this long.
const REUSE_MARGIN_SECS: i64 = 60;

/// WeChat Pay takes at most 127 bytes of `description` (42 Chinese characters).
const DESCRIPTION_BYTES: usize = 127;

/// `s` cut to at most `max` bytes at a character boundary.
fn fit_bytes(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Opens (or returns) the bill's order on `channel`.
pub async fn create_payment(
    d: &Deps,
    v: &Viewer,
    bill_id: Id,
    channel: Channel,
) -> Result<OrderRow> {
    let (bill, payer) = {
        let mut c = d.db.conn().await?;
        let bill = db::visible_bill(&mut c, v, bill_id).await?;
        let payer = match channel {
            Channel::WechatJsapi => Some(
                db::wechat_identity(&mut c, v)
                    .await?
                    .ok_or(Error::PayerNotWechat)?,
            ),
            _ => None,
        };
        (bill, payer)
    };
    if bill.status != "OPEN" {
        return Err(Error::BillNotOpen {
            status: bill.status,
        });
    }
    let payments = &d.payments;
    let (merchant_id, app_id) = match channel {
        Channel::WechatNative | Channel::WechatJsapi => {
            let m = payments.merchants.wechat(bill.tenant_id).await?;
            (m.mch_id.clone(), m.app_id.clone())
        }
        Channel::AlipayQr => {
            let m = payments.merchants.alipay(bill.tenant_id).await?;
            (m.app_id.clone(), m.app_id.clone())
        }
    };
    let payer_openid = match payer {
        // The openid must be the payer's under the merchant's app.
        Some((payer_app, openid)) if payer_app == app_id => Some(openid),
        Some(_) => return Err(Error::PayerNotWechat),
        None => None,
    };
    let description = fit_bytes(&bill.title, DESCRIPTION_BYTES);
    // A concurrent request may open an order between our look and our insert: look again.
    for _ in 0..3 {
        let open = {
            let mut c = d.db.conn().await?;
            orders::db::find_open_for_bill(&mut c, bill.id).await?
        };
        if let Some(o) = open {
            let reusable = o.channel == channel.as_str()
                && o.payer_openid == payer_openid
                && (o.code_url.is_some() || o.prepay_id.is_some())
                && o.expires_at > Utc::now() + Duration::seconds(REUSE_MARGIN_SECS);
            if reusable {
                return Ok(o);
            }
            let now = close_everywhere(d, &o).await?;
            if now.status != orders::CLOSED {
                // The previous order was paid: that is the answer.
                return Ok(now);
            }
        }
        let now = Utc::now();
        let out_trade_no = new_out_trade_no();
        let row = NewOrderRow {
            tenant_id: bill.tenant_id,
            bill_id: bill.id,
            provider: channel.provider().as_str(),
            channel: channel.as_str(),
            out_trade_no: &out_trade_no,
            merchant_id: &merchant_id,
            app_id: &app_id,
            amount_fen: bill.amount_fen,
            description: &description,
            payer_openid: payer_openid.as_deref(),
            expires_at: now + payments.settings.qr_lifetime,
            next_query_at: now + payments.settings.first_query_after,
            created_by: Some(v.user_id),
        };
        let inserted = {
            let mut tx = d.db.begin().await?;
            // Held and re-checked under the write: a bill paid or cancelled since is not
            // reopened, and a cancel waits for this order (and then refuses).
            let still_open = crate::billing::db::lock_bill(&mut tx, bill.tenant_id, bill.id)
                .await?
                .status
                == "OPEN";
            if !still_open {
                tx.rollback().await?;
                return Err(Error::BillNotOpen {
                    status: "no longer OPEN".into(),
                });
            }
            match orders::db::insert_order(&mut tx, &row).await {
                Ok(o) => {
                    tx.commit().await?;
                    o
                }
                Err(minigate_payments::Error::OrderOpen) => {
                    tx.rollback().await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        };
        return open_at_provider(d, inserted).await;
    }
    Err(minigate_payments::Error::OrderOpen.into())
}

/// Tells the provider about a new order and records what it gave back. A refusal closes the
/// order here (the provider has none); an unanswered request leaves it `CREATED` for the active
/// query to settle, due at once.
async fn open_at_provider(d: &Deps, o: OrderRow) -> Result<OrderRow> {
    let p = &d.payments;
    let notify_url = format!(
        "{}/pay/{}/notify",
        p.settings.notify_base.trim_end_matches('/'),
        o.provider
    );
    let order = NewOrder {
        out_trade_no: &o.out_trade_no,
        description: &o.description,
        amount_fen: o.amount_fen,
        expires_at: o.expires_at,
        notify_url: &notify_url,
        payer_openid: o.payer_openid.as_deref(),
    };
    let opened = match o.provider.as_str() {
        "wechat" => {
            let m = p.merchants.wechat(o.tenant_id).await?;
            p.wechat.open(&m, &order).await
        }
        _ => {
            let m = p.merchants.alipay(o.tenant_id).await?;
            p.alipay.precreate(&m, &order).await.map(Opened::CodeUrl)
        }
    };
    let mut c = d.db.conn().await?;
    match opened {
        Ok(Opened::CodeUrl(url)) => {
            Ok(orders::db::set_opened(&mut c, o.id, Some(&url), None).await?)
        }
        Ok(Opened::PrepayId(id)) => {
            Ok(orders::db::set_opened(&mut c, o.id, None, Some(&id)).await?)
        }
        Err(e @ minigate_payments::Error::Refused { .. }) => {
            drop(c);
            tracing::warn!(order = %o.id, error = %e, "provider refused a new order");
            super::settle::close_here(d, o.id).await?;
            Err(e.into())
        }
        Err(e) => {
            tracing::warn!(order = %o.id, code = e.code(), error = %e, "new order not confirmed by its provider");
            orders::db::reschedule(&mut c, o.id, Utc::now()).await?;
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fit_bytes;

    #[test]
    fn descriptions_are_cut_on_character_boundaries() {
        assert_eq!(fit_bytes("Rent", 127), "Rent");
        let long = "租金".repeat(40);
        let cut = fit_bytes(&long, 127);
        assert!(cut.len() <= 127);
        assert_eq!(cut.chars().count(), 42);
    }
}
