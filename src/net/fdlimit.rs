//! File descriptors: raising the soft limit, and telling how many are left.
//!
//! Every socket is a descriptor, and the soft `RLIMIT_NOFILE` is often 1024: a client near a
//! thousand sockets fails with `EMFILE` although the hard limit allows far more. Like Go at
//! start-up, [`raise_fd_limit`] lifts the soft limit to the hard one. Batches call it once per
//! process and then keep their concurrency within what is left.

use std::io;
use std::sync::OnceLock;

use rustix::io::Errno;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, and returns the soft limit now in force
/// (`None`: unlimited). Safe to call again; later calls change nothing the first did not.
///
/// Child processes inherit the raised limit; a program that runs children which expect 1024
/// should lower it for them.
pub fn raise_fd_limit() -> io::Result<Option<u64>> {
    let limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit cannot be the soft one: the kernel refuses it. Use the most it
    // will allow a process (`fs.nr_open` on Linux), or 2^20.
    let target = limit.maximum.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20)
    });
    if limit.current.is_some_and(|current| current >= target) {
        return Ok(limit.current);
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        },
    )?;
    Ok(Some(target))
}

/// [`raise_fd_limit`], once per process; later calls return the first outcome.
pub(crate) fn raise_fd_limit_once() -> Option<u64> {
    static RAISED: OnceLock<Option<u64>> = OnceLock::new();
    *RAISED.get_or_init(|| match raise_fd_limit() {
        Ok(limit) => limit,
        Err(_) => getrlimit(Resource::Nofile).current,
    })
}

/// Descriptors open in this process now, if the OS tells (Linux: `/proc/self/fd`).
pub(crate) fn open_fds() -> Option<usize> {
    // The directory handle itself is one entry while it is read; don't count it.
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|dir| dir.count().saturating_sub(1))
}

/// True for the errors that mean "no descriptor or local port free right now": the request
/// can wait for one instead of failing.
pub(crate) fn is_exhaustion(errno: Errno) -> bool {
    [
        Errno::MFILE,
        Errno::NFILE,
        Errno::ADDRNOTAVAIL,
        Errno::NOBUFS,
    ]
    .contains(&errno)
}
