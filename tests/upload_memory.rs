//! A streamed upload holds no whole body: the client's peak memory does not grow with the size
//! of a body it sends from a reader. One test in its own file, so that the process's peak
//! resident size (`VmHWM`) is this test's alone.

mod util;

use std::io::Read;

use util::status_bytes;
use volley::{Body, Client, Runtime};
use volley_testserver::Server;

/// A reader of `left` bytes of `*`, made as it is read.
struct Stars(u64);

impl Read for Stars {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.0 as usize);
        buf[..n].fill(b'*');
        self.0 -= n as u64;
        Ok(n)
    }
}

/// 64 MiB sent from a reader, with its length known and unknown, raise the peak resident
/// size by far less than the body: the reader is read a few 64 KiB pieces ahead of the
/// socket, and `/count` (in this process too) keeps none of it.
#[test]
fn a_streamed_upload_is_not_held_whole() {
    let _watchdog = util::watchdog("a_streamed_upload_is_not_held_whole", 300);
    const SIZE: u64 = 64 << 20;
    let server = Server::spawn_thread("127.0.0.1:0".parse().unwrap()).unwrap();
    let rt = Runtime::new().unwrap();
    let client = Client::new();
    let before = status_bytes("VmRSS:");
    rt.block_on(async {
        for body in [
            Body::sized_reader(Stars(SIZE), SIZE),
            Body::from_reader(Stars(SIZE)),
        ] {
            let response = client
                .put(server.url("/count"))
                .body(body)
                .send()
                .await
                .unwrap();
            let json: serde_json::Value =
                serde_json::from_str(&response.text().await.unwrap()).unwrap();
            assert_eq!(json["length"], SIZE);
        }
    });
    let grown_mib = (status_bytes("VmHWM:") - before) >> 20;
    eprintln!("peak resident size grew by {grown_mib} MiB sending 2 x 64 MiB");
    assert!(
        grown_mib < 24,
        "peak memory grew by {grown_mib} MiB streaming a 64 MiB body"
    );
}
