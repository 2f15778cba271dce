//! notify: a notifications listener over SSE only (one long-lived GET, plain HTTP that most
//! proxies pass). Prints each notification and every state change with its cause.
//!
//! ```text
//! cargo run -p tether-examples --bin notify -- --endpoint http://127.0.0.1:8787/tether \
//!     --channels alerts[,billing...]
//! ```

use tether::{Client, Event, TransportKind};
use tether_examples::{args, describe_event};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("notify: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let a = args();
    if a.contains_key("help") {
        println!("usage: notify --endpoint URL --channels a,b,c");
        return Ok(());
    }
    let endpoint = a
        .get("endpoint")
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8787/tether".into());
    let channels = a
        .get("channels")
        .cloned()
        .unwrap_or_else(|| "alerts".into());
    let client = Client::builder(endpoint.clone())
        .transports(&[TransportKind::Sse])
        .build()?;
    let mut events = client.events();
    for ch in channels.split(',').filter(|c| !c.is_empty()) {
        client.subscribe(ch).await?;
    }
    client.connect()?;
    println!("notify: listening on {channels} at {endpoint} over SSE (Ctrl-C quits)");
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                match &ev.event {
                    Event::Message { channel, seq, data } => println!("[{channel} #{seq}] {data}"),
                    _ => {
                        if let Some(line) = describe_event(&ev) {
                            println!("{line}");
                        }
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    client.close().await?;
    Ok(())
}
