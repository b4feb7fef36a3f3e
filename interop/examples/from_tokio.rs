//! volley from a tokio program: 1,000 requests through `tokio::spawn` on a multi-thread
//! runtime, with the threaded client (`Send + Sync + Clone`; its I/O runs on a volley loop
//! thread of its own). Runs against the embedded test server; prints `ok N/N` last.
//!
//! ```text
//! cargo run --release -p volley-interop --example from_tokio
//! ```

use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = volley_testserver::Server::spawn_thread("127.0.0.1:0".parse()?)?;
    let client = volley::threaded::Client::new();
    let started = Instant::now();
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let client = client.clone();
            let url = server.url(&format!("/get?i={i}"));
            tokio::spawn(async move {
                let resp = client.get(&url).send().await?;
                let status = resp.status();
                let body = resp.text().await?;
                Ok::<bool, volley::Error>(status == 200 && body.contains(&format!("i={i}")))
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await? {
            Ok(true) => ok += 1,
            Ok(false) => eprintln!("unexpected response"),
            Err(e) => eprintln!("error: {e:#}"),
        }
    }
    println!("{} requests in {:.0?}", 1000, started.elapsed());
    println!("ok {ok}/1000");
    if ok != 1000 {
        std::process::exit(1);
    }
    Ok(())
}
