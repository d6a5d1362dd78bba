//! `POST /webhooks/yookassa`: YooKassa's payment notifications. They carry no signature, so a
//! notification is only a hint: it is accepted from YooKassa's published address ranges only
//! (the socket peer, or behind a reverse proxy the configured trusted header), and the payment it
//! names is re-read from the API by `ops::settle_yookassa`, which acts on that answer alone.
//! The answer is 200 for anything from an allowed address (YooKassa retries everything else for
//! a day), 403 otherwise; settling is waited for a few seconds at most.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;

use crate::app::App;

/// YooKassa's notification sources (yookassa.ru/developers, "Входящие уведомления").
const YOOKASSA_NETS: [&str; 7] = [
    "185.71.76.0/27",
    "185.71.77.0/27",
    "77.75.153.0/25",
    "77.75.154.128/25",
    "77.75.156.11/32",
    "77.75.156.35/32",
    "2a02:5180::/32",
];

/// Longest a notification's answer waits for its settlement; a slower one finishes in the
/// background (and reconciliation settles the payment in any case).
const SETTLE_WAIT: Duration = Duration::from_secs(5);

const MAX_BODY: usize = 64 * 1024;

/// Whether `ip` is one of YooKassa's notification addresses.
pub fn is_yookassa_address(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    YOOKASSA_NETS.iter().any(|net| {
        net.parse::<ipnet::IpNet>()
            .is_ok_and(|net| net.contains(&ip))
    })
}

/// The client address: the trusted header's (its last entry, the one our proxy added) when
/// `yookassa.trusted_header` is set, else the socket peer.
fn source(app: &App, req: &Request) -> Option<IpAddr> {
    let cfg = app.config.yookassa.as_ref()?;
    match &cfg.trusted_header {
        Some(name) => {
            let value = req.headers().get(name.as_str())?.to_str().ok()?;
            let last = value.rsplit(',').next()?.trim();
            last.parse::<IpAddr>()
                .ok()
                .or_else(|| last.parse::<SocketAddr>().ok().map(|s| s.ip()))
        }
        None => req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
    }
}

pub async fn notification(State(app): State<App>, req: Request) -> StatusCode {
    if app.yookassa.is_none() {
        return StatusCode::NOT_FOUND;
    }
    let from = source(&app, &req);
    if !from.is_some_and(is_yookassa_address) {
        tracing::warn!(source = ?from, "YooKassa notification from an address outside YooKassa's ranges refused");
        return StatusCode::FORBIDDEN;
    }
    let Ok(body) = axum::body::to_bytes(req.into_body(), MAX_BODY).await else {
        return StatusCode::BAD_REQUEST;
    };
    let Some(payment_id) = crate::yookassa::notification_payment_id(&body) else {
        tracing::warn!(source = ?from, "YooKassa notification without a payment id ignored");
        return StatusCode::BAD_REQUEST;
    };
    let settle = tokio::spawn({
        let (app, id) = (app.clone(), payment_id.clone());
        async move { crate::ops::settle_yookassa(&app, &id).await }
    });
    match tokio::time::timeout(SETTLE_WAIT, settle).await {
        Ok(Ok(Ok(settled))) => {
            tracing::debug!(payment = %payment_id, ?settled, "YooKassa notification settled");
        }
        Ok(Ok(Err(e))) => {
            tracing::warn!(payment = %payment_id, error = %e, "YooKassa notification not settled now; reconciliation will retry");
        }
        Ok(Err(e)) => {
            tracing::error!(payment = %payment_id, error = %e, "settling a YooKassa notification panicked");
        }
        Err(_) => {
            tracing::warn!(payment = %payment_id, "settling a YooKassa notification is slow; answered, it goes on");
        }
    }
    StatusCode::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yookassa_ranges_are_allowed() {
        for ok in [
            "185.71.76.0",
            "185.71.76.31",
            "185.71.77.5",
            "77.75.153.127",
            "77.75.154.128",
            "77.75.154.255",
            "77.75.156.11",
            "77.75.156.35",
            "2a02:5180::1",
            "::ffff:185.71.76.10",
        ] {
            assert!(is_yookassa_address(ok.parse().unwrap()), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            "185.71.76.32",
            "185.71.78.1",
            "77.75.153.128",
            "77.75.154.127",
            "77.75.156.12",
            "2a02:5181::1",
            "::1",
            "10.0.0.1",
        ] {
            assert!(!is_yookassa_address(bad.parse().unwrap()), "{bad}");
        }
    }
}
