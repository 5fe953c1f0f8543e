//! `[[webhook]]`: where events are posted.

use std::path::PathBuf;

use serde::Deserialize;

/// The events a webhook can ask for.
pub const EVENTS: [&str; 4] = [
    "sync.finished",
    "snapshot.created",
    "alias.published",
    "gc.finished",
];

/// One `[[webhook]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where each event is POSTed (http or https).
    pub url: String,
    /// Which events (see [`EVENTS`]); all when absent.
    #[serde(default)]
    pub events: Vec<String>,
    /// A file whose first line is the shared secret: each body is signed with
    /// HMAC-SHA256 under it (`X-Hub-Signature-256: sha256=HEX`, as GitHub does). Never
    /// the secret itself in the config.
    pub secret_file: Option<PathBuf>,
}

impl WebhookConfig {
    pub(super) fn check(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| format!("webhook url {:?}: {e}", self.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "webhook url {:?}: only http:// and https:// are posted to",
                self.url
            ));
        }
        for e in &self.events {
            if !EVENTS.contains(&e.as_str()) {
                return Err(format!(
                    "webhook {:?}: unknown event {e:?}; the events are {}",
                    self.url,
                    EVENTS.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Does it want `event`?
    pub fn wants(&self, event: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == event)
    }
}
