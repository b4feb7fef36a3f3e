//! The blocking client from plain threads: 4 std threads, 250 requests each, sharing one
//! `volley::blocking::Client` (and so one loop thread and its keep-alive pool). Runs against
//! the embedded test server; prints `ok N/N` last.
//!
//! ```text
//! cargo run --release --example blocking
//! ```

use std::io::Read;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = volley_testserver::Server::spawn_thread("127.0.0.1:0".parse()?)?;
    let client = volley::blocking::Client::new();
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let client = client.clone();
            let base = server.url("/get");
            std::thread::spawn(move || {
                let mut ok = 0;
                for i in 0..250 {
                    let url = format!("{base}?t={t}&i={i}");
                    let result = client
                        .get(&url)
                        .send()
                        .and_then(|resp| resp.error_for_status());
                    match result {
                        Ok(mut resp) => {
                            // The body through std::io::Read, as a file or a decoder would take it.
                            let mut body = String::new();
                            if resp.read_to_string(&mut body).is_ok()
                                && body.contains(&url[base.len()..])
                            {
                                ok += 1;
                            }
                        }
                        Err(e) => eprintln!("error: {e:#}"),
                    }
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for thread in threads {
        ok += thread.join().expect("a request thread panicked");
    }
    println!("1000 requests from 4 threads in {:.0?}", started.elapsed());
    println!("ok {ok}/1000");
    if ok != 1000 {
        std::process::exit(1);
    }
    Ok(())
}
