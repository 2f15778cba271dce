//! (P7) fallback latency on loopback: connect() against a server that refuses every WebSocket
//! upgrade (403, FALLBACK-2a) until the first message is delivered over SSE, 20 times in a
//! row; and against a server that swallows the upgrade (never answers), where the client
//! waits for the default `open_timeout` (20 clients at once, each timed on its own).

use super::{median, Res};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tether::{Client, Event, State, TransportKind};
use tether_server::faults::{Fault, FaultRule, FaultTarget};
use tether_server::{Server, ServerConfig};

/// Milliseconds from `connect()` to the first message, and the transport it came on.
async fn first_message(endpoint: &str, channel: &str) -> Res<(f64, Option<TransportKind>)> {
    let client = Client::builder(endpoint).build()?;
    let mut events = client.events();
    client.subscribe(channel).await?;
    let start = Instant::now();
    client.connect()?;
    loop {
        match events.recv().await {
            Some(ev) if matches!(ev.event, Event::Message { .. }) => break,
            Some(_) => {}
            None => return Err("p7: driver ended".into()),
        }
    }
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let transport = match client.state() {
        State::Connected { transport } | State::Degraded { transport, .. } => Some(transport),
        _ => None,
    };
    client.close().await?;
    Ok((ms, transport))
}

/// A server publishing one message per millisecond on `channel` (so a client's first
/// message follows its subscription by at most 1 ms).
async fn ticking_server(
    fault: Fault,
    channel: &'static str,
) -> Res<(Arc<Server>, tokio::task::JoinHandle<()>)> {
    let server = Arc::new(
        Server::start(ServerConfig {
            heartbeat: Duration::from_secs(30),
            ..ServerConfig::default()
        })
        .await?,
    );
    server.apply_fault(FaultRule::always(fault).on(FaultTarget::WebSocket));
    let s = server.clone();
    let ticker = tokio::spawn(async move {
        let mut i = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        loop {
            tick.tick().await;
            i += 1;
            let _ = s.publish(channel, serde_json::json!({ "i": i })).await;
        }
    });
    Ok((server, ticker))
}

/// (refused: median, min, max ms; stalled: median, min, max ms), 20 samples each.
pub async fn fallback_latency(samples: usize) -> Res<([f64; 3], [f64; 3])> {
    let (server, ticker) = ticking_server(Fault::RefuseUpgrade { status: 403 }, "p7").await?;
    let endpoint = server.endpoint_url();
    let mut refused = Vec::new();
    for _ in 0..samples {
        let (ms, transport) = first_message(&endpoint, "p7").await?;
        if transport != Some(TransportKind::Sse) {
            return Err(format!("p7: first message over {transport:?}, not SSE").into());
        }
        refused.push(ms);
    }
    ticker.abort();
    drop(server);

    let (server, ticker) = ticking_server(Fault::SwallowUpgrade, "p7s").await?;
    let endpoint = server.endpoint_url();
    let runs: Vec<_> = (0..samples)
        .map(|_| {
            let e = endpoint.clone();
            tokio::spawn(async move { first_message(&e, "p7s").await.map_err(|e| e.to_string()) })
        })
        .collect();
    let mut stalled = Vec::new();
    for r in runs {
        let (ms, transport) = r.await??;
        if transport != Some(TransportKind::Sse) {
            return Err(format!("p7: after a stalled upgrade, over {transport:?}").into());
        }
        stalled.push(ms);
    }
    ticker.abort();
    Ok((spread(refused), spread(stalled)))
}

/// Median, min, max.
pub fn spread(v: Vec<f64>) -> [f64; 3] {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    [median(v), min, max]
}
