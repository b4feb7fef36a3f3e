//! The runtime layer: the executor, the reactor, timers, and the handles user code calls.

pub(crate) mod blocking;
pub(crate) mod context;
pub(crate) mod executor;
pub(crate) mod reactor;
pub(crate) mod runtime;
pub(crate) mod task;
pub(crate) mod timer;

pub use blocking::{spawn_blocking, BlockingTask, BLOCKING_KEEP_ALIVE, MAX_BLOCKING_THREADS};
pub use context::in_runtime;
pub use runtime::{Runtime, RuntimeStats, MAX_POLLS_PER_TURN};
pub use task::{spawn, JoinError, JoinHandle};
pub use timer::{interval, sleep, sleep_until, timeout, timeout_at, Elapsed, Interval, Sleep};
