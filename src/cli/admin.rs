//! `cairn token` and `cairn audit`.

use std::process::ExitCode;

use anyhow::Result;

use super::actor;
use super::args::TokenCommand;
use super::display::fmt_time;
use super::App;
use crate::app::tokens::TokenSpec;
use crate::store::catalog::AuditFilter;

pub(super) async fn token_cmd(app: &App, command: TokenCommand) -> Result<ExitCode> {
    match command {
        TokenCommand::Create {
            name,
            scope,
            repos,
            views,
            expires,
            json,
        } => {
            let spec = TokenSpec {
                name,
                scope,
                repos,
                views,
                expires,
            };
            let made = app.create_token(&actor(), &spec).await?;
            if json {
                let mut value = serde_json::to_value(&made.info)?;
                value["token"] = serde_json::Value::String(made.secret.to_string());
                out!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                out!("{}", made.secret.as_str());
                eprintln!(
                    "token {:?} ({}{}): keep it now, it cannot be shown again",
                    made.info.name,
                    made.info.scope.as_str(),
                    made.info
                        .expires_at
                        .map(|t| format!(", expires {}", fmt_time(t)))
                        .unwrap_or_default()
                );
            }
        }
        TokenCommand::List { json } => {
            let tokens = app.tokens().await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                out!(
                    "{:<20} {:<6} {:<8} {:<21} {:<21} limits",
                    "NAME",
                    "SCOPE",
                    "STATE",
                    "EXPIRES",
                    "LAST USED"
                );
                for t in tokens {
                    let limits: Vec<String> = t
                        .repos
                        .iter()
                        .map(|r| format!("repo:{r}"))
                        .chain(t.views.iter().map(|v| format!("view:{v}")))
                        .collect();
                    out!(
                        "{:<20} {:<6} {:<8} {:<21} {:<21} {}",
                        t.name,
                        t.scope.as_str(),
                        t.state,
                        t.expires_at.map(fmt_time).unwrap_or_else(|| "never".into()),
                        t.last_used_at
                            .map(fmt_time)
                            .unwrap_or_else(|| "never".into()),
                        if limits.is_empty() {
                            "all".to_string()
                        } else {
                            limits.join(" ")
                        }
                    );
                }
            }
        }
        TokenCommand::Revoke { name } => {
            app.revoke_token(&actor(), &name).await?;
            out!("token {name:?} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn audit_cmd(app: &App, filter: &AuditFilter, json: bool) -> Result<ExitCode> {
    let rows = app.audit_log(filter).await?;
    if json {
        out!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    for r in rows {
        out!(
            "{} {:<16} {:<16} {:<20} {:>7}ms {}{}",
            fmt_time(r.at),
            r.actor,
            r.operation,
            if r.target.is_empty() { "-" } else { &r.target },
            r.duration_ms,
            r.outcome,
            r.error.map(|e| format!(": {e}")).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
