//! The audit log's page (`/audit`): who changed what, newest first, filterable by actor
//! and operation, a hundred rows a page. Served only with an admin token (the handler
//! checks it before the page is asked for).

use askama::Template;

use super::pages::{ok, when, Page, Result};
use crate::store::catalog::{AuditFilter, Catalog};

/// Rows per page.
const ROWS: i64 = 100;

struct Row {
    id: i64,
    when: String,
    actor: String,
    operation: String,
    target: String,
    params: String,
    ok: bool,
    error: String,
    duration: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditTemplate<'a> {
    actor: &'a str,
    operation: &'a str,
    rows: Vec<Row>,
    /// The query of the next (older) page, when there is one.
    older: Option<String>,
}

pub async fn render(
    catalog: &Catalog,
    actor: &str,
    operation: &str,
    before: Option<i64>,
) -> Result<Page> {
    let filter = AuditFilter {
        since: None,
        actor: (!actor.is_empty()).then(|| actor.to_string()),
        operation: (!operation.is_empty()).then(|| operation.to_string()),
        before_id: before,
        limit: ROWS,
    };
    let rows: Vec<Row> = catalog
        .audit_rows(&filter)
        .await?
        .into_iter()
        .map(|r| Row {
            id: r.id,
            when: when(r.at),
            actor: r.actor,
            operation: r.operation,
            target: r.target,
            params: r.params,
            ok: r.outcome == "ok",
            error: r.error.unwrap_or_default(),
            duration: format!("{} ms", r.duration_ms),
        })
        .collect();
    let older = match rows.last() {
        Some(last) if rows.len() as i64 == ROWS => {
            let encode = |s: &str| {
                percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            };
            Some(format!(
                "actor={}&operation={}&before={}",
                encode(actor),
                encode(operation),
                last.id
            ))
        }
        _ => None,
    };
    ok(AuditTemplate {
        actor,
        operation,
        rows,
        older,
    }
    .render()?)
}
