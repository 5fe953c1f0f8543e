//! The audit log: every change an [`App`] operation makes writes one row when it ends
//! (ok or failed), naming who asked ([`Actor`]), what and on what, with which
//! parameters, and how long it took. The operations write it themselves, so the command
//! line, the scheduler and the API cannot leave it out. Parameters are chosen by each
//! operation and never hold a secret.

use crate::app::unix_now;
use std::future::Future;
use std::time::Instant;

use crate::app::context::{App, AppError};
use crate::domain::actor::Actor;
use crate::store::catalog::{AuditFilter, AuditRow};

/// An audit row as shown: its parameters as the JSON object they are.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    /// Unix time the operation started.
    pub at: i64,
    /// `cli:<unix user>`, `scheduler`, `token:<name>` or `signal:<name>`.
    pub actor: String,
    pub operation: String,
    /// `repo:NAME`, `view:NAME`, `token:NAME`, `job:ID`, or empty for the installation.
    pub target: String,
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// `ok` or `error`.
    pub outcome: String,
    pub error: Option<String>,
    pub duration_ms: i64,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> AuditEntry {
        AuditEntry {
            params: serde_json::from_str(&r.params).unwrap_or_default(),
            id: r.id,
            at: r.at,
            actor: r.actor,
            operation: r.operation,
            target: r.target,
            outcome: r.outcome,
            error: r.error,
            duration_ms: r.duration_ms,
        }
    }
}

/// What an operation records of itself.
#[derive(Debug, Clone)]
pub struct Change {
    /// `sync`, `import`, `snapshot.create`, `alias.publish`, `token.create`, …
    pub operation: &'static str,
    /// `repo:NAME`, `view:NAME`, `token:NAME`, or empty for the whole installation.
    pub target: String,
    /// A JSON object of the operation's parameters.
    pub params: serde_json::Value,
}

impl Change {
    pub fn new(operation: &'static str, target: impl Into<String>) -> Change {
        Change {
            operation,
            target: target.into(),
            params: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn with(mut self, params: serde_json::Value) -> Change {
        self.params = params;
        self
    }
}

impl App {
    /// Runs `operation` and writes its audit row. The change has happened (or failed)
    /// whatever becomes of the row: a row that cannot be written is logged and counted
    /// (`cairn_audit_write_failures_total`) rather than reported as the operation's
    /// failure.
    pub(crate) async fn audited<T>(
        &self,
        by: &Actor,
        change: Change,
        operation: impl Future<Output = Result<T, AppError>>,
    ) -> Result<T, AppError> {
        let at = unix_now();
        let started = Instant::now();
        let result = operation.await;
        let error = result.as_ref().err().map(ToString::to_string);
        let duration_ms = started.elapsed().as_millis() as i64;
        let written = self
            .catalog
            .insert_audit(
                at,
                &by.to_string(),
                change.operation,
                &change.target,
                &change.params.to_string(),
                error.as_deref(),
                duration_ms,
            )
            .await;
        if let Some(event) = crate::app::webhooks::event_of(change.operation, error.is_none()) {
            let body = serde_json::json!({
                "event": event,
                "at": at,
                "actor": by.to_string(),
                "operation": change.operation,
                "target": change.target,
                "params": change.params,
                "outcome": if error.is_some() { "error" } else { "ok" },
                "error": error,
                "duration_ms": duration_ms,
            });
            self.queue_event(event, &body).await;
        }
        if let Err(e) = written {
            crate::app::metrics::metrics().audit_write_failures.inc();
            tracing::error!(
                "audit log: cannot record {} {} by {by}: {e}",
                change.operation,
                change.target
            );
        }
        result
    }

    /// The audit rows `filter` selects, newest first.
    pub async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, AppError> {
        Ok(self
            .catalog
            .audit_rows(filter)
            .await?
            .into_iter()
            .map(AuditEntry::from)
            .collect())
    }
}
