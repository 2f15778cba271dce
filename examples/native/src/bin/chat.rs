//! chat: a terminal chat room over Tether. Lines typed on stdin are published to the room;
//! messages and every state change (with its cause) are printed live.
//!
//! ```text
//! cargo run -p tether-examples --bin chat -- --endpoint http://127.0.0.1:8787/tether \
//!     --room lobby --name alice [--transport websocket|sse|long_poll] [--store DIR]
//! ```
//!
//! With `--store DIR` the outbox and memo live in a [`tether::FileStore`] there, so lines
//! typed while offline survive a restart of the chat itself.

use serde_json::json;
use tether::{Client, Event, FileStore, TransportKind};
use tether_examples::{args, describe_event};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("chat: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let a = args();
    if a.contains_key("help") {
        println!(
            "usage: chat --endpoint URL --room ROOM --name NAME [--transport websocket|sse|long_poll] [--store DIR]"
        );
        return Ok(());
    }
    let endpoint = a
        .get("endpoint")
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8787/tether".into());
    let room = a.get("room").cloned().unwrap_or_else(|| "lobby".into());
    let name = a.get("name").cloned().unwrap_or_else(|| "anon".into());
    let mut builder = Client::builder(endpoint.clone());
    if let Some(t) = a.get("transport") {
        let kind = TransportKind::parse(t).ok_or_else(|| format!("unknown transport {t:?}"))?;
        builder = builder.transports(&[kind]);
    }
    if let Some(dir) = a.get("store") {
        builder = builder.store(FileStore::open(dir)?);
    }
    let client = builder.build()?;
    let mut events = client.events();
    client.subscribe(&room).await?;
    client.connect()?;
    println!("chat: {name} in #{room} at {endpoint}; type a line and press enter (Ctrl-D quits)");

    let printer = tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            match &ev.event {
                Event::Message { channel, seq, data } => {
                    let from = data["from"].as_str().unwrap_or("?");
                    let text = data["text"]
                        .as_str()
                        .map_or_else(|| data.to_string(), str::to_owned);
                    println!("#{channel} {seq:>5} <{from}> {text}");
                }
                _ => {
                    if let Some(line) = describe_event(&ev) {
                        println!("{line}");
                    }
                }
            }
        }
    });

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        // Durable in the outbox once this returns; acked (or dropped) later.
        let handle = client
            .publish(&room, json!({ "from": name, "text": text }))
            .await?;
        tokio::spawn(async move {
            if let Err(d) = handle.await {
                println!("(not delivered: {d})");
            }
        });
    }
    client.close().await?;
    printer.abort();
    Ok(())
}
