//! `.json()` and `.query()` (reqwest's names) against the embedded test server's `/anything`,
//! which echoes the request back as JSON.
//!
//! ```text
//! cargo run --release --example json
//! ```

use serde_json::{json, Value};
use volley::{Client, Runtime};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = volley_testserver::Server::spawn_thread("127.0.0.1:0".parse()?)?;
    let rt = Runtime::new()?;
    rt.block_on(async {
        let client = Client::new();
        let echo: Value = client
            .post(server.url("/anything"))
            .query(&[("page", "2"), ("q", "rust http")])
            .json(&json!({"name": "volley", "loops": 1}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        println!("{}", serde_json::to_string_pretty(&echo)?);
        assert_eq!(echo["args"]["q"], "rust http");
        assert_eq!(echo["json"]["name"], "volley");
        assert_eq!(echo["headers"]["Content-Type"], "application/json");
        println!("ok");
        Ok(())
    })
}
