//! The status of a recorded run (a sync): what the catalog stores, the pages show and
//! the metrics count, as one type.

use std::fmt;
use std::str::FromStr;

/// How a sync run stands or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Started and not ended (or ended by a kill, until the next run records it).
    #[default]
    Running,
    /// Ended with new content in place.
    Ok,
    /// Upstream had not changed: nothing to do.
    Unchanged,
    /// Ended with an error; nothing changed.
    Failed,
}

impl RunStatus {
    /// The word stored in the catalog and shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Unchanged => "unchanged",
            RunStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status word that is not one of [`RunStatus`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown run status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for RunStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<RunStatus, UnknownStatus> {
        Ok(match s {
            "running" => RunStatus::Running,
            "ok" => RunStatus::Ok,
            "unchanged" => RunStatus::Unchanged,
            "failed" => RunStatus::Failed,
            other => return Err(UnknownStatus(other.to_string())),
        })
    }
}

impl TryFrom<String> for RunStatus {
    type Error = UnknownStatus;

    fn try_from(s: String) -> Result<RunStatus, UnknownStatus> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::RunStatus;

    #[test]
    fn statuses_read_back_what_they_write() {
        for s in [
            RunStatus::Running,
            RunStatus::Ok,
            RunStatus::Unchanged,
            RunStatus::Failed,
        ] {
            assert_eq!(s.as_str().parse::<RunStatus>(), Ok(s));
        }
        assert!("done".parse::<RunStatus>().is_err());
    }
}
