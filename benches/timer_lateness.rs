//! How late timers fire: 2,000 sleeps of 1 to 50 ms, all pending at once on one runtime,
//! each measuring `Instant::now() - deadline` when it wakes. A timer must never be early; the
//! goal is "normally within 1 ms".
//!
//! cargo bench -p volley-benches --bench timer_lateness

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test -p volley-benches --benches` only checks that this builds
    }
    let rt = volley::Runtime::new().unwrap();
    let lateness = Rc::new(RefCell::new(Vec::new()));
    rt.block_on(async {
        let mut handles = Vec::new();
        for i in 0..2000u64 {
            let lateness = lateness.clone();
            // Spread deadlines over 1..50 ms with sub-millisecond offsets.
            let delay = Duration::from_micros(1000 + (i * 7919) % 49_000);
            handles.push(volley::spawn(async move {
                let deadline = Instant::now() + delay;
                volley::sleep_until(deadline).await;
                let now = Instant::now();
                assert!(now >= deadline, "a timer fired early");
                lateness.borrow_mut().push(now - deadline);
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
    });
    let mut l = lateness.borrow().clone();
    l.sort();
    let q = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)];
    let within_1ms = l.iter().filter(|d| **d <= Duration::from_millis(1)).count();
    println!("timer lateness over {} sleeps (none early):", l.len());
    println!(
        "  p50 {:?}  p90 {:?}  p99 {:?}  max {:?}  within 1 ms: {:.1} %",
        q(0.5),
        q(0.9),
        q(0.99),
        l[l.len() - 1],
        100.0 * within_1ms as f64 / l.len() as f64
    );
}
