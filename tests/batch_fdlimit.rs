//! Descriptor-aware admission: with RLIMIT_NOFILE lowered to 256 in a child process, a batch
//! of 2,000 at a concurrency of 2,000 completes with no failure. The child also takes away
//! descriptors after the batch has sized itself, so connects hit EMFILE and must be requeued.

use std::process::Command;
use std::time::Duration;

use rustix::process::{setrlimit, Resource, Rlimit};
use volley::{Client, Runtime};
use volley_testserver::Server;

const CHILD_ENV: &str = "VOLLEY_FDLIMIT_CHILD_URL";
const REQUESTS: usize = 2000;

/// The parent serves (with normal limits) and runs this same test again as the child.
#[test]
fn batch_completes_under_a_low_descriptor_limit() {
    if let Ok(url) = std::env::var(CHILD_ENV) {
        return child(&url);
    }
    let server = Server::spawn_thread("127.0.0.1:0".parse().unwrap()).unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "batch_completes_under_a_low_descriptor_limit",
            "--nocapture",
        ])
        .env(CHILD_ENV, server.url("/delay/0.01"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("child: 2000 ok, 0 failed"), "{stdout}");
    assert!(server.stats().requests >= REQUESTS as u64);
}

/// The child: lower the limit, start the batch, then take 120 descriptors away from it.
fn child(url: &str) {
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(256),
            maximum: Some(256),
        },
    )
    .unwrap();
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let urls = vec![url.to_owned(); REQUESTS];
        let client = Client::new();
        let mut stream = client
            .fetch_all(urls)
            .concurrency(REQUESTS)
            .duplicates(volley::batch::Duplicates::Fetch)
            .keep_bodies(false)
            .stream();
        // The batch sized itself to the descriptors free when it started; now make fewer free.
        let hogs: Vec<std::fs::File> = (0..120)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let mut ok = 0;
        let mut failed = Vec::new();
        let run = async {
            while let Some(result) = stream.next().await {
                match result.outcome {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(format!("{e:#}")),
                }
            }
        };
        volley::timeout(Duration::from_secs(60), run)
            .await
            .expect("the batch finished");
        drop(hogs);
        println!("child: {ok} ok, {} failed", failed.len());
        assert!(
            failed.is_empty(),
            "first failures: {:?}",
            &failed[..failed.len().min(5)]
        );
    });
}
