//! cargo run --release --example gather
//!
//! The seeds' timer demos, on volley's tasks and timers.
//!
//! ```text
//! cargo run --release --example gather                   # ~8.5 s: 1 unit = 100 ms
//! cargo run --release --example gather -- --quick        # every duration / 10, ~0.85 s (for CI)
//! cargo run --release --example gather -- --unit-ms 250  # part 2 with 1 unit = 250 ms
//! cargo run --release --example gather -- --seed-times   # part 2 as in the seed: 1 unit = 1 s
//! ```
//!
//! **Part 1** (seeds/004): two coroutines sleep 4 s and 5 s. Gathered, that is both started and
//! then both awaited, they finish after 5 s, not 9: while one sleeps, the other sleeps too.
//!
//! **Part 2** (seeds/003): five tables, A to E, each think about their order for 4 units, then
//! give it to the one waiter, who takes one order at a time and needs 1 unit for each. One
//! table after another this takes 5 × (4 + 1) = 25 units. As tasks, the tables think at the
//! same time, and only the waiter is left in series: 4 + 5 × 1 = 9 units.
//!
//! The program exits non-zero if a measured time is below its expected time (a timer fired
//! early) or well above it.

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use volley::Runtime;

/// How long each table thinks about its order, in units.
const THINK_UNITS: u32 = 4;
/// How long the waiter needs to take down one order, in units.
const ORDER_UNITS: u32 = 1;
/// The tables, as in the seed.
const TABLES: [&str; 5] = ["A", "B", "C", "D", "E"];

const USAGE: &str = "usage: gather [--quick] [--unit-ms N] [--seed-times]";

/// The durations this run uses, from the command line.
#[derive(Clone, Copy, Debug)]
struct Config {
    /// Part 1's two sleeps: 4 s and 5 s, or a tenth of that with `--quick`.
    short_sleep: Duration,
    long_sleep: Duration,
    /// Part 2's unit of time.
    unit: Duration,
}

fn parse_args() -> Result<Config, String> {
    let mut unit_ms = 100;
    let mut quick = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--seed-times" => unit_ms = 1000,
            "--unit-ms" => {
                let value = args.next().ok_or("--unit-ms needs a value")?;
                unit_ms = match value.parse() {
                    Ok(ms) if ms > 0 => ms,
                    _ => return Err(format!("--unit-ms wants a positive integer, not {value:?}")),
                };
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let scale = if quick { 10 } else { 1 };
    Ok(Config {
        short_sleep: Duration::from_secs(4) / scale,
        long_sleep: Duration::from_secs(5) / scale,
        unit: Duration::from_millis(unit_ms) / scale,
    })
}

fn main() -> ExitCode {
    let config = match parse_args() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("gather: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gather: cannot create the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };

    // Everything below runs on this one thread, inside one call to `block_on`.
    let results = rt.block_on(async {
        let gathered = part1(config).await;
        let (sequential, concurrent) = part2(config).await;
        [gathered, sequential, concurrent]
    });

    println!("\nSummary: expected vs measured");
    println!("  {:<26} {:>22} {:>10}", "run", "expected", "measured");
    let mut all_ok = true;
    for result in &results {
        all_ok &= result.print();
    }
    if all_ok {
        println!("ok: every run took its expected time");
        ExitCode::SUCCESS
    } else {
        println!("FAILED: a run finished early or much too late");
        ExitCode::FAILURE
    }
}

// ---------------------------------------------------------------------------------------------
// Part 1: gather a 4 s and a 5 s sleep
// ---------------------------------------------------------------------------------------------

/// The seed's `asyncio.gather(coroutine_1(), coroutine_2())`.
async fn part1(config: Config) -> Outcome {
    let (short, long) = (config.short_sleep, config.long_sleep);
    println!(
        "Part 1: gather a {} and a {} sleep",
        secs(short),
        secs(long)
    );
    let start = Instant::now();

    // `spawn` starts each coroutine as a task of its own; neither has run yet. It is the
    // spawning of both *before* awaiting either that makes them overlap. Writing
    // `coroutine(..).await; coroutine(..).await;` instead would take 4 + 5 = 9 s.
    let first = volley::spawn(coroutine("coroutine_1", short, start));
    let second = volley::spawn(coroutine("coroutine_2", long, start));

    // Wait for both, in any order: the first is done after 4 s, and awaiting the second then
    // waits only the 1 s that is left of its 5.
    let first_done = first.await.expect("coroutine_1 does not panic");
    let second_done = second.await.expect("coroutine_2 does not panic");
    let total = start.elapsed();

    println!("  coroutine_1 finished at {}", secs(first_done));
    println!("  coroutine_2 finished at {}", secs(second_done));
    println!(
        "  total {} (the longer sleep), not {} (the sum)\n",
        secs(total),
        secs(short + long)
    );
    Outcome {
        name: format!("gather {} + {}", secs(short), secs(long)),
        expected: long,
        expected_label: String::new(),
        measured: total,
    }
}

/// Logs, sleeps for `duration`, logs again, and returns when it finished (from `start`).
async fn coroutine(name: &str, duration: Duration, start: Instant) -> Duration {
    println!("  {} {name} is active on the event loop", stamp(start));
    println!(
        "  {} {name} yielding control, blocked for {}",
        stamp(start),
        secs(duration)
    );
    // The task is suspended here. Its timer's deadline becomes the loop's poll timeout, and
    // the loop wakes the task once that deadline has passed. Meanwhile the thread is free.
    volley::sleep(duration).await;
    println!("  {} {name} resumed, exiting", stamp(start));
    start.elapsed()
}

// ---------------------------------------------------------------------------------------------
// Part 2: waiters and tables
// ---------------------------------------------------------------------------------------------

/// The one waiter every table shares.
///
/// The waiter takes one order at a time, so a table that is ready while he is busy must wait
/// its turn. The seed's threaded version guards the waiter with a lock. We need none: all
/// tasks run on one thread, and between two `.await` points a task runs alone. So a table
/// simply books the waiter's next free unit, reading and moving `free_at` with no `.await` in
/// between where another table could slip in, and then sleeps until its order is taken.
#[derive(Debug)]
struct Waiter {
    name: &'static str,
    /// When the waiter has taken every order booked so far and is free again.
    free_at: Cell<Instant>,
}

impl Waiter {
    fn new(name: &'static str) -> Waiter {
        Waiter {
            name,
            free_at: Cell::new(Instant::now()),
        }
    }

    /// Takes an order: waits until the waiter is free, then `duration` more.
    async fn take_order(&self, duration: Duration) {
        // Book the waiter: from when he is free (or now, if he is free already) ...
        let begins = self.free_at.get().max(Instant::now());
        let done = begins + duration;
        // ... to `done`. The next table to ask gets the slot after this one.
        self.free_at.set(done);
        volley::sleep_until(done).await;
    }
}

/// A table: think, then give the order to the waiter.
///
/// In the seed's asyncio version the waiter calls the blocking `time.sleep(1)`, which freezes
/// the whole event loop for that second. It still ends at 9 s, because the orders are in
/// series anyway, but no other task, timer or socket gets a turn meanwhile. Here the waiter's
/// time is a timer too, so the loop stays free.
async fn give_order(table: &'static str, waiter: Rc<Waiter>, unit: Duration, start: Instant) {
    println!(
        "  {} {table} is thinking about the order",
        units(start, unit)
    );
    volley::sleep(unit * THINK_UNITS).await;
    println!("  {} {table} is ready to order", units(start, unit));
    waiter.take_order(unit * ORDER_UNITS).await;
    println!(
        "  {} {table} has given its order to {}",
        units(start, unit),
        waiter.name
    );
}

/// Runs the tables one after another, then all at once. Returns both outcomes.
async fn part2(config: Config) -> (Outcome, Outcome) {
    let unit = config.unit;
    let per_table = THINK_UNITS + ORDER_UNITS;
    let sequential_units = TABLES.len() as u32 * per_table;
    let concurrent_units = THINK_UNITS + TABLES.len() as u32 * ORDER_UNITS;
    println!(
        "Part 2: {} tables, one waiter (1 unit = {}); tables think {THINK_UNITS} units, \
         an order takes {ORDER_UNITS}",
        TABLES.len(),
        secs(unit)
    );

    // One after another: await each table before starting the next, as the seed's
    // sequential_waiter.py does. Nothing overlaps, so the times add up.
    println!("sequential: each table in turn");
    let waiter = Rc::new(Waiter::new("John Doe"));
    let start = Instant::now();
    for table in TABLES {
        give_order(table, waiter.clone(), unit, start).await;
    }
    let sequential = start.elapsed();
    println!("  taking all orders took {}\n", in_units(sequential, unit));

    // All at once: spawn one task per table, then await them all, as the seed's
    // `eventloop.create_task(...)` and `asyncio.wait(tasks)`. All five think at the same time
    // and are ready after 4 units; the waiter then takes their orders one by one.
    println!("concurrent: one task per table");
    let waiter = Rc::new(Waiter::new("John Doe"));
    let start = Instant::now();
    let tasks: Vec<_> = TABLES
        .into_iter()
        .map(|table| volley::spawn(give_order(table, waiter.clone(), unit, start)))
        .collect();
    for task in tasks {
        task.await.expect("a table does not panic");
    }
    let concurrent = start.elapsed();
    println!("  taking all orders took {}", in_units(concurrent, unit));

    let outcome = |name: &str, n: u32, measured| Outcome {
        name: name.to_owned(),
        expected: unit * n,
        expected_label: format!("{n} units = "),
        measured,
    };
    (
        outcome("tables, sequential", sequential_units, sequential),
        outcome("tables, concurrent", concurrent_units, concurrent),
    )
}

// ---------------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------------

/// One run's expected and measured time.
#[derive(Debug)]
struct Outcome {
    name: String,
    expected: Duration,
    /// Printed before the expected time, such as "9 units = ".
    expected_label: String,
    measured: Duration,
}

impl Outcome {
    /// Prints one summary row and returns whether the time was as expected.
    ///
    /// A timer never fires early, so a run can only take longer than expected: by the
    /// millisecond granularity of each poll, plus whatever else the machine is doing. Allow a
    /// quarter more, plus 50 ms.
    fn print(&self) -> bool {
        let early = self.measured < self.expected;
        let late = self.measured > self.expected + self.expected / 4 + Duration::from_millis(50);
        let verdict = match (early, late) {
            (true, _) => "EARLY",
            (_, true) => "LATE",
            _ => "ok",
        };
        let expected = format!("{}{}", self.expected_label, secs(self.expected));
        println!(
            "  {:<26} {expected:>22} {:>10}  {verdict}",
            self.name,
            secs(self.measured)
        );
        verdict == "ok"
    }
}

/// A duration in seconds, to the millisecond: "5.001 s".
fn secs(duration: Duration) -> String {
    format!("{:.3} s", duration.as_secs_f64())
}

/// Time since `start`, for the log: "[  5.001 s]".
fn stamp(start: Instant) -> String {
    format!("[{:>9}]", secs(start.elapsed()))
}

/// A duration in units and seconds: "9.01 units (0.901 s)".
fn in_units(duration: Duration, unit: Duration) -> String {
    let n = duration.as_secs_f64() / unit.as_secs_f64();
    format!("{n:.2} units ({})", secs(duration))
}

/// Time since `start` in units, for the log: "[t =  4.00 units]".
fn units(start: Instant, unit: Duration) -> String {
    let n = start.elapsed().as_secs_f64() / unit.as_secs_f64();
    format!("[t = {n:5.2} units]")
}
