//! Temp files in the pool: their names (which say which process wrote them) and when a
//! leftover is stale enough to remove.

use super::*;

/// Is `name` a temp file a [`Stager`] writes beside a blob's final name? Left over
/// by a crashed or cancelled writer, such files are removed by garbage collection
/// once that writer has ended (see [`is_stale_temp`]); nothing else reads them.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Is the temp file at `path` a crashed or cancelled writer's? When its name says
/// which process wrote it: as soon as that process is gone (whatever its age: no one
/// else ever writes that file; a process that reuses the id writes files of other
/// names). Resumable partial downloads name no process: they outlive the run that
/// started them by design, and go once older than [`STALE_TMP`].
pub fn is_stale_temp(path: &Path) -> bool {
    match path
        .file_name()
        .and_then(|n| writer_pid(&n.to_string_lossy()))
    {
        Some(pid) => !process_is_alive(pid),
        None => fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age >= STALE_TMP),
    }
}

/// The process id in a temp file's name: `.<sha256>.<pid>-<n>.tmp` beside a blob, or
/// `<pid>-<n>-<nanos>.tmp` in `tmp/`.
pub(super) fn writer_pid(name: &str) -> Option<u32> {
    let stem = name.strip_suffix(".tmp")?;
    let tail = stem.rsplit_once('.').map_or(stem, |(_, t)| t);
    tail.split('-').next()?.parse().ok()
}

/// Does a process with this id exist (ours included)?
pub(super) fn process_is_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

pub(super) fn process_id() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}
