//! What serving takes from the configuration (the keys served under `/keys/`, the
//! repositories and views whose trees need a token), held whole so a reload swaps it
//! in one step.

use super::keys;

/// What serving takes from the configuration; swapped whole when it is reloaded.
pub struct Settings {
    /// The public keys served under `/keys/`.
    pub keys: keys::ServedKeys,
    /// Repositories and views whose trees need a token (`access = "token"`), by URL
    /// prefix and name.
    pub guarded: std::collections::HashSet<(&'static str, String)>,
    /// The same, as the public pages leave them out.
    pub hidden: super::pages::Hidden,
    /// How long a worker trusts a token it saw accepted (`[server] token_cache`).
    pub token_cache: std::time::Duration,
}

impl Settings {
    pub fn of(app: &crate::app::context::App) -> Settings {
        use crate::app::config::Access;
        let repos = app
            .config
            .repos
            .iter()
            .filter(|r| r.access == Access::Token)
            .map(|r| ("repos", r.id.clone()));
        let views = app
            .config
            .views
            .iter()
            .filter(|v| v.access == Access::Token)
            .map(|v| ("views", v.name.clone()));
        let guarded: std::collections::HashSet<(&'static str, String)> =
            repos.chain(views).collect();
        Settings {
            keys: keys::ServedKeys::of(app),
            hidden: std::sync::Arc::new(guarded.clone()),
            guarded,
            token_cache: app.config.server.token_cache,
        }
    }

    /// Does `owner` (in the space with URL prefix `prefix`) need a token?
    pub fn guarded(&self, prefix: &str, owner: &str) -> bool {
        self.guarded
            .contains(&(prefix_static(prefix), owner.to_string()))
    }
}

fn prefix_static(prefix: &str) -> &'static str {
    if prefix == "views" {
        "views"
    } else {
        "repos"
    }
}
