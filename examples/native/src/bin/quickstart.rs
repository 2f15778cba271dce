//! quickstart: the README's quick start, verbatim below this header (tests/readme.rs checks it).
//! Run `cargo run -p tether-server` in one terminal, then `cargo run -p tether-examples --bin quickstart`.

use serde_json::json;
use tether::{Client, Event, FileStore, State};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::builder("http://127.0.0.1:8787/tether")
        .store(FileStore::open("tether-store")?) // outbox + memo survive restarts (default: memory)
        .build()?;
    let mut events = client.events(); // every event from now on, in order
    client.subscribe("lobby").await?;
    client.connect()?; // from here on it reconnects by itself (backoff, resume, fallback)

    client.state_watch().wait_for(State::is_up).await?;
    println!("state: {}", client.state()); // e.g. "connected (websocket)"

    let handle = client.publish("lobby", json!({"text": "hi"})).await?; // durable in the outbox
    let ack = handle.await?; // resolves on the server's ack (or with the reason it was dropped)
    println!("acked {} as seq {:?}", ack.id, ack.seq);

    while let Some(ev) = events.recv().await {
        match ev.event {
            Event::StateChanged { to, cause, .. } => println!("state: {to} (cause: {cause})"),
            Event::Message { channel, seq, data } => {
                println!("{channel}#{seq}: {data}");
                break;
            }
            _ => {}
        }
    }
    client.close().await?; // code 1000; anything still queued stays in the store
    Ok(())
}
