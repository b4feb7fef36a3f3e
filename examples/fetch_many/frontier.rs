//! `fetch_many --enqueue`, `--from` and `--status`: a frontier of URLs in Redis, shared by
//! workers on any number of machines (feature `redis`). See the example's docs, "Beyond one
//! machine".

use std::fs::OpenOptions;
use std::time::Duration;

use volley::batch::RetryPolicy;
use volley::frontier::{Frontier, Outcome, RedisFrontier, Worker};
use volley::Url;

use super::{check_url, client_settings, read_line, Args, ClientSettings, Files, Line, Output};

/// URLs put per call: one round trip each.
const PUT_CHUNK: usize = 1000;

/// Runs the frontier mode that `args` names, if any: `Some(exit status)`.
pub(super) fn run(args: &Args) -> Option<u8> {
    let result = if let Some(url) = &args.enqueue {
        enqueue(args, url)
    } else if let Some(url) = &args.status {
        status(args, url)
    } else if let Some(url) = &args.from {
        work(args, url)
    } else {
        return None;
    };
    Some(result.unwrap_or_else(|message| {
        eprintln!("fetch_many: {message}");
        1
    }))
}

fn open(args: &Args, url: &str) -> Result<RedisFrontier, String> {
    let mut builder = RedisFrontier::builder(url).lease(args.lease);
    // With a rate, a shard's URLs are leased about a second of that rate ahead (at least 2):
    // a shard that moves to another worker waits for what this one leased of it.
    if let Some(rate) = args.rate {
        builder = builder.lease_per_shard((rate.ceil() as usize).max(2));
    }
    builder.open().map_err(|e| e.to_string())
}

/// `--enqueue URL`: puts the URLs of `-i` (or the URL arguments) into the frontier.
fn enqueue(args: &Args, url: &str) -> Result<u8, String> {
    let mut frontier = open(args, url)?;
    let files = Files::open(args)?;
    let (mut added, mut seen, mut invalid) = (0, 0, 0);
    let mut chunk: Vec<Url> = Vec::with_capacity(PUT_CHUNK);
    let mut put = |chunk: &mut Vec<Url>, added: &mut usize| -> Result<(), String> {
        *added += frontier.put(chunk).map_err(|e| e.to_string())?;
        chunk.clear();
        Ok(())
    };
    let mut take = |text: &str, chunk: &mut Vec<Url>| match check_url(text) {
        Ok(url) => {
            chunk.push(url);
            seen += 1;
        }
        Err(why) => {
            invalid += 1;
            if invalid <= 5 {
                eprintln!("fetch_many: not enqueued: {text:?}: {why}");
            }
        }
    };
    let mut read_failed = false;
    match files.input {
        Some((mut reader, name)) => {
            let mut line = Vec::new();
            loop {
                match read_line(&mut *reader, &mut line) {
                    Ok(read) if read.bytes == 0 => break,
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!(
                            "fetch_many: cannot read -i {name}: {e}; the rest is not enqueued"
                        );
                        read_failed = true;
                        break;
                    }
                }
                let text = String::from_utf8_lossy(line.trim_ascii());
                if text.is_empty() || text.starts_with('#') {
                    continue;
                }
                take(&text, &mut chunk);
                if chunk.len() >= PUT_CHUNK {
                    put(&mut chunk, &mut added)?;
                }
            }
        }
        None => {
            for text in &args.urls {
                take(text, &mut chunk);
            }
        }
    }
    put(&mut chunk, &mut added)?;
    let known = seen - added;
    match args.json {
        true => println!(
            "{}",
            serde_json::json!({"frontier": url, "added": added, "known": known, "invalid": invalid})
        ),
        false => {
            println!("{url}: {added} URLs added, {known} already there, {invalid} lines not URLs")
        }
    }
    Ok(u8::from(read_failed || invalid > 0))
}

/// `--status URL`: queued, leased, done and failed, per shard.
fn status(args: &Args, url: &str) -> Result<u8, String> {
    let mut frontier = open(args, url)?;
    let status = frontier.status().map_err(|e| e.to_string())?;
    let total = status.total();
    if args.json {
        let shards: Vec<_> = status
            .shards
            .iter()
            .enumerate()
            .map(|(k, s)| {
                serde_json::json!({"shard": k, "queued": s.queued, "leased": s.leased,
                                   "done": s.done, "failed": s.failed})
            })
            .collect();
        let all = serde_json::json!({"queued": total.queued, "leased": total.leased,
                                     "done": total.done, "failed": total.failed});
        println!(
            "{}",
            serde_json::json!({"frontier": url, "total": all, "shards": shards})
        );
        return Ok(0);
    }
    println!("{url}: {} shards", status.shards.len());
    println!(
        "{:>6} {:>10} {:>10} {:>10} {:>10}",
        "shard", "queued", "leased", "done", "failed"
    );
    for (k, s) in status.shards.iter().enumerate() {
        if (s.queued, s.leased, s.done, s.failed) != (0, 0, 0, 0) {
            println!(
                "{k:>6} {:>10} {:>10} {:>10} {:>10}",
                s.queued, s.leased, s.done, s.failed
            );
        }
    }
    println!(
        "{:>6} {:>10} {:>10} {:>10} {:>10}",
        "all", total.queued, total.leased, total.done, total.failed
    );
    Ok(0)
}

/// `--from URL`: a worker, until the frontier is drained.
fn work(args: &Args, url: &str) -> Result<u8, String> {
    let mut frontier = open(args, url)?;
    let settings = ClientSettings {
        max_time: args.max_time,
        tls: args.tls,
        system_dns: args.system_dns,
    };
    // Checked here, so that the loops' own calls cannot fail.
    drop(client_settings(volley::Client::builder(), &settings)?);
    let client = volley::threaded::Client::builder()
        .threads(args.threads)
        .configure(move |b| match client_settings(b, &settings) {
            Ok((b, _)) => b,
            Err(e) => panic!("client settings checked before: {e}"),
        })
        .build();
    // -o is appended to: a worker started again keeps the lines of its earlier runs.
    let mut output = match &args.output {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open -o {}: {e}", path.display()))?;
            Some(Output::new(file, path.clone()))
        }
        None => None,
    };
    let save = args.save.clone();
    if let Some(dir) = &save {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create --save {}: {e}", dir.display()))?;
    }
    let policy = RetryPolicy::default().max_retries(args.retries);
    let worker = frontier.worker().to_owned();
    let (mut failed, mut line_buf) = (0u64, Vec::new());
    let report = Worker::new(&mut frontier, client)
        .window((args.concurrency * 2).max(100))
        .renew_every((args.lease / 4).max(Duration::from_millis(100)))
        .run(
            |batch| {
                let mut batch = batch
                    .concurrency(args.concurrency)
                    .retry(policy)
                    .max_retry_after(args.max_retry_after)
                    .keep_bodies(save.is_some());
                if let Some(n) = args.per_host {
                    batch = batch.per_host(n);
                }
                if let Some(rate) = args.rate {
                    batch = batch.rate(rate, 1);
                }
                batch
            },
            |_, result, _| {
                let line = Line::of(result, &policy, save.as_deref());
                line_buf.clear();
                line.write_json(&mut line_buf);
                // The line goes to -o before the frontier records it: a kill in between
                // fetches the URL again rather than lose it.
                if let Some(output) = &mut output {
                    output.write_with(|buf| buf.extend_from_slice(&line_buf));
                    output.flush();
                }
                let ok = result.outcome.is_ok() && !line.gave_up && !line.save_failed;
                failed += u64::from(!ok);
                Outcome {
                    ok,
                    record: String::from_utf8_lossy(&line_buf).into_owned(),
                }
            },
        )
        .map_err(|e| e.to_string())?;
    if let Some(failure) = output.as_ref().and_then(|o| o.failure()) {
        return Err(failure);
    }
    let s = &report.summary;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "frontier": url, "worker": worker, "fetched": report.fetched,
                "recorded": report.recorded, "failed": failed, "requests": s.requests,
                "ok": s.ok, "elapsed_s": s.elapsed.as_secs_f64(),
                "requests_per_s": s.requests_per_s(), "statuses": s.statuses,
            })
        );
    } else {
        println!(
            "worker {worker} of {url}: fetched {} URLs ({} recorded here; {} were recorded by \
             another worker first), {failed} failed, {:.1} req/s; the frontier is drained",
            report.fetched,
            report.recorded,
            report.fetched - report.recorded,
            s.requests_per_s()
        );
    }
    Ok(u8::from(failed > 0))
}
