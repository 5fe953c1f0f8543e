//! The `cairn` binary: its allocator, then the command line ([`cairn::cli`]).

/// mimalloc: a sync parses, renders and frees millions of small strings on several
/// threads, and glibc's allocator took about a quarter of its CPU time (see the
/// allocator section of bench/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its number in `mi_option_e`, mimalloc.h, the
/// same in mimalloc v2 and v3; the crate versions are pinned in Cargo.toml so that it
/// cannot move unseen).
const MI_OPTION_PURGE_DELAY: i32 = 15;

fn main() -> std::process::ExitCode {
    // Memory freed goes back to the system at once rather than 10 ms later: with the
    // default, a 100,000-package sync peaked at 245 to 287 MiB, against its 256 MiB
    // bound (about 220 MiB this way, for a few percent more system time).
    // SAFETY: a plain setter of a process-wide option, called before any other thread
    // exists.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
    cairn::cli::main()
}
