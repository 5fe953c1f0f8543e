//! Who changes an installation: the command line (as a unix user), the server's
//! scheduler, or the holder of an API token. Audit rows name them by [`Actor`]'s text.

/// Who asked for a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A `cairn` command, run by this unix user.
    Cli(String),
    /// A scheduled sync in `cairn serve`.
    Scheduler,
    /// An API request authenticated by the token of this name.
    Token(String),
    /// A signal sent to the server (`SIGHUP`: reload the configuration).
    Signal(&'static str),
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Cli(user) => write!(f, "cli:{user}"),
            Actor::Scheduler => f.write_str("scheduler"),
            Actor::Token(name) => write!(f, "token:{name}"),
            Actor::Signal(name) => write!(f, "signal:{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_are_written_as_audit_rows_name_them() {
        assert_eq!(Actor::Cli("root".into()).to_string(), "cli:root");
        assert_eq!(Actor::Scheduler.to_string(), "scheduler");
        assert_eq!(Actor::Token("ci".into()).to_string(), "token:ci");
    }
}
