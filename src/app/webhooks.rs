//! Webhooks: each change that finishes (a sync, a snapshot made, an alias published, a
//! gc) queues one delivery per `[[webhook]]` that wants its event, in the catalog, with
//! its audit row; `cairn serve` delivers the queue, whichever process made the change.
//!
//! A delivery is a JSON `POST` (the audit row, with the event's name) signed with
//! HMAC-SHA256 of the body under the webhook's secret, in GitHub's form
//! (`X-Hub-Signature-256: sha256=HEX`, also sent as `X-Cairn-Signature-256`), with
//! `X-Cairn-Event` and `X-Cairn-Delivery`. A 2xx answer delivers it; anything else
//! (or no answer within [`TIMEOUT`]) is retried after 1, 2, 4, … seconds (at most an
//! hour apart) until [`MAX_ATTEMPTS`], then the delivery is marked failed. Outcomes are
//! counted in `cairn_webhook_deliveries_total` and listed by the API.

use crate::app::unix_now;
use std::time::Duration;

use hmac::{KeyInit, Mac};

use crate::app::context::App;
use crate::store::catalog::DeliveryRow;

/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: i64 = 10;
/// How long one attempt may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How often the queue is looked at.
const POLL: Duration = Duration::from_millis(500);

/// The event a finished operation is, if any.
pub fn event_of(operation: &str, ok: bool) -> Option<&'static str> {
    match (operation, ok) {
        ("sync", _) => Some("sync.finished"),
        ("gc", _) => Some("gc.finished"),
        ("snapshot.create", true) => Some("snapshot.created"),
        ("alias.publish", true) => Some("alias.published"),
        _ => None,
    }
}

/// `sha256=HEX` of HMAC-SHA256(`secret`, `body`).
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Seconds until the next attempt after `attempts` failed ones.
fn backoff(attempts: i64) -> i64 {
    1i64 << (attempts.clamp(1, 12) - 1)
}

impl App {
    /// Queues `event` (its body) for every webhook that wants it.
    pub(crate) async fn queue_event(&self, event: &str, body: &serde_json::Value) {
        let urls: Vec<&str> = self
            .config
            .webhooks
            .iter()
            .filter(|h| h.wants(event))
            .map(|h| h.url.as_str())
            .collect();
        if urls.is_empty() {
            return;
        }
        if let Err(e) = self
            .catalog
            .enqueue_deliveries(&urls, event, &body.to_string())
            .await
        {
            crate::app::metrics::metrics()
                .webhook_deliveries
                .with_label_values(&["lost"])
                .inc();
            tracing::error!("webhooks: cannot queue {event}: {e}");
        }
    }

    /// The secret of the webhook posting to `url`, read from its `secret_file`.
    fn webhook_secret(&self, url: &str) -> Result<Option<Vec<u8>>, String> {
        let Some(hook) = self.config.webhooks.iter().find(|h| h.url == url) else {
            return Err("no [[webhook]] posts to this URL any more".into());
        };
        let Some(file) = &hook.secret_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("reading its secret_file {}: {e}", file.display()))?;
        Ok(Some(
            text.lines().next().unwrap_or("").trim().as_bytes().to_vec(),
        ))
    }

    /// One attempt at `d`: the state it leaves, the receiver's status, and the error.
    async fn attempt(
        &self,
        client: &reqwest::Client,
        d: &DeliveryRow,
    ) -> (Option<i64>, Result<(), String>) {
        let secret = match self.webhook_secret(&d.url) {
            Ok(s) => s,
            Err(e) => return (None, Err(e)),
        };
        let mut req = client
            .post(&d.url)
            .header("content-type", "application/json")
            .header("user-agent", concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .header("x-cairn-event", &d.event)
            .header("x-cairn-delivery", d.id.to_string())
            .body(d.body.clone());
        if let Some(secret) = secret {
            let sig = signature(&secret, d.body.as_bytes());
            req = req
                .header("x-hub-signature-256", &sig)
                .header("x-cairn-signature-256", &sig);
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => (Some(resp.status().as_u16() as i64), Ok(())),
            Ok(resp) => {
                let status = resp.status().as_u16() as i64;
                (Some(status), Err(format!("the receiver answered {status}")))
            }
            Err(e) => (None, Err(format!("posting failed: {e}"))),
        }
    }

    /// Delivers what is due, once.
    pub async fn deliver_due(&self, client: &reqwest::Client) {
        let due = match self.catalog.due_deliveries(64).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!("webhooks: reading the queue: {e}");
                return;
            }
        };
        let m = crate::app::metrics::metrics();
        for d in due {
            let (status, outcome) = self.attempt(client, &d).await;
            let tried = d.attempts + 1;
            let (state, next, error, label) = match outcome {
                Ok(()) => ("delivered", unix_now(), None, "delivered"),
                Err(e) if tried >= MAX_ATTEMPTS => ("failed", unix_now(), Some(e), "failed"),
                Err(e) => ("pending", unix_now() + backoff(tried), Some(e), "retried"),
            };
            if let Some(e) = &error {
                tracing::warn!(
                    "webhook {} ({} #{}), attempt {tried}: {e}",
                    d.url,
                    d.event,
                    d.id
                );
            }
            m.webhook_deliveries.with_label_values(&[label]).inc();
            if let Err(e) = self
                .catalog
                .record_attempt(d.id, state, next, status, error.as_deref())
                .await
            {
                tracing::warn!("webhooks: recording delivery {}: {e}", d.id);
            }
        }
    }
}

/// Delivers the queue for as long as the server runs.
pub fn start(app: &App) -> Option<tokio::task::JoinHandle<()>> {
    if app.config.webhooks.is_empty() {
        return None;
    }
    let app = app.clone();
    Some(tokio::spawn(async move {
        let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("webhooks: cannot make an HTTP client: {e}");
                return;
            }
        };
        loop {
            app.deliver_due(&client).await;
            tokio::time::sleep(POLL).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_githubs_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn retries_back_off_and_events_follow_outcomes() {
        assert_eq!(
            [1, 2, 3, 4].map(backoff),
            [1, 2, 4, 8],
            "1, 2, 4, ... seconds"
        );
        assert_eq!(backoff(40), 2048);
        assert_eq!(event_of("sync", false), Some("sync.finished"));
        assert_eq!(event_of("snapshot.create", false), None);
        assert_eq!(event_of("alias.publish", true), Some("alias.published"));
        assert_eq!(event_of("import", true), None);
    }
}
