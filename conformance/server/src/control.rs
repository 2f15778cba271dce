//! A control channel for a server running as its own process (`tether-server --control`): JSON lines in (publish, faults, close, drain), the observation log and the replies streamed out, so a test harness can `kill -9` it and still know what it saw.
//!
//! Output, one JSON object per line:
//! - first `{"type":"listening","addr":"127.0.0.1:PORT","endpoint":"http://…/tether","server_id":"…","epoch":N}`;
//! - `{"type":"log","entry":{…}}` for every [`LogEntry`](crate::LogEntry), in order, at most
//!   [`LOG_EVERY`] after it was recorded;
//! - `{"type":"reply","id":N,"ok":true,…}` or `{"type":"reply","id":N,"ok":false,"error":"…"}`
//!   for every command.
//!
//! Input, one JSON object per line, each with an `id`:
//! `{"id":1,"op":"publish","channel":"c","data":{…}}` (reply: `seq`),
//! `{"id":2,"op":"fault","rule":{…FaultRule…}}`, `{"id":3,"op":"clear_faults"}`,
//! `{"id":4,"op":"close_all","code":1012,"reason":"…"}`,
//! `{"id":5,"op":"drain","from_ms":0,"to_ms":1000}`, `{"id":6,"op":"undrain"}`.
//! The channel ends, and the caller then stops the server, when the input ends.

use crate::{FaultRule, Server};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// How often new log entries are written out.
pub const LOG_EVERY: Duration = Duration::from_millis(10);

/// One command on the control channel.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Publish {
        channel: String,
        data: Value,
    },
    Fault {
        rule: FaultRule,
    },
    ClearFaults,
    CloseAll {
        code: u16,
        #[serde(default)]
        reason: String,
    },
    Drain {
        from_ms: u64,
        to_ms: u64,
    },
    Undrain,
}

#[derive(Debug, Deserialize)]
struct Line {
    id: u64,
    #[serde(flatten)]
    op: Op,
}

/// Serve the control channel of `server` on `input`/`output` until `input` ends.
pub async fn serve(
    server: &Server,
    input: impl AsyncRead + Unpin,
    mut output: impl AsyncWrite + Unpin + Send + 'static,
) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let hello = json!({
        "type": "listening",
        "addr": server.addr().to_string(),
        "endpoint": server.endpoint_url(),
        "server_id": server.server_id(),
        "epoch": server.epoch(),
    });
    let _ = tx.send(hello.to_string());
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = first;
            batch.push('\n');
            while let Ok(more) = rx.try_recv() {
                batch.push_str(&more);
                batch.push('\n');
            }
            if output.write_all(batch.as_bytes()).await.is_err() || output.flush().await.is_err() {
                return;
            }
        }
    });
    let st = server.state().clone();
    let log_tx = tx.clone();
    let streamer = tokio::spawn(async move {
        let mut next = 0u64;
        let mut tick = tokio::time::interval(LOG_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for e in st.log().since(next) {
                next = e.index + 1;
                let line = json!({"type": "log", "entry": e}).to_string();
                if log_tx.send(line).is_err() {
                    return;
                }
            }
        }
    });
    let mut lines = BufReader::new(input).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Line>(&line) {
            Err(e) => {
                let id = serde_json::from_str::<Value>(&line)
                    .ok()
                    .and_then(|v| v.get("id").and_then(Value::as_u64))
                    .unwrap_or(0);
                json!({"type": "reply", "id": id, "ok": false, "error": format!("bad command: {e}")})
            }
            Ok(Line { id, op }) => match run(server, op).await {
                Ok(mut v) => {
                    v["type"] = json!("reply");
                    v["id"] = json!(id);
                    v["ok"] = json!(true);
                    v
                }
                Err(e) => json!({"type": "reply", "id": id, "ok": false, "error": e}),
            },
        };
        let _ = tx.send(reply.to_string());
    }
    streamer.abort();
    drop(tx);
    let _ = writer.await;
    Ok(())
}

async fn run(server: &Server, op: Op) -> Result<Value, String> {
    match op {
        Op::Publish { channel, data } => {
            let seq = server
                .publish(&channel, data)
                .await
                .map_err(|e| e.to_string())?;
            Ok(json!({ "seq": seq }))
        }
        Op::Fault { rule } => {
            server.apply_fault(rule);
            Ok(json!({}))
        }
        Op::ClearFaults => {
            server.clear_faults();
            Ok(json!({}))
        }
        Op::CloseAll { code, reason } => Ok(json!({ "closed": server.close_all(code, &reason) })),
        Op::Drain { from_ms, to_ms } => Ok(json!({ "drained": server.drain(from_ms, to_ms) })),
        Op::Undrain => {
            server.undrain();
            Ok(json!({}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LogEntry, ServerConfig};

    #[tokio::test]
    async fn commands_answer_and_the_log_streams() {
        let server = Server::start(ServerConfig::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (mut to_server, input) = tokio::io::duplex(64 * 1024);
        let (output, from_server) = tokio::io::duplex(1024 * 1024);
        let task = {
            let server_ref = &server;
            async move { serve(server_ref, input, output).await }
        };
        let client = async {
            let mut lines = BufReader::new(from_server).lines();
            for cmd in [
                r#"{"id":1,"op":"publish","channel":"c","data":{"n":1}}"#,
                r#"{"id":2,"op":"publish","channel":"c","data":{"n":2}}"#,
                r#"{"id":3,"op":"fault","rule":{"fault":"refuse_upgrade","status":403,"count":1}}"#,
                r#"{"id":4,"op":"teleport"}"#,
            ] {
                to_server
                    .write_all(format!("{cmd}\n").as_bytes())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            let mut replies = Vec::new();
            let mut publishes = 0;
            let mut first = None;
            while replies.len() < 4 || publishes < 2 {
                let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
                    .await
                    .unwrap_or_else(|_| panic!("control output stalled"))
                    .unwrap_or_else(|e| panic!("{e}"))
                    .unwrap_or_else(|| panic!("control output ended"));
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}"));
                first.get_or_insert(v["type"].clone());
                match v["type"].as_str() {
                    Some("reply") => replies.push(v),
                    Some("log") => {
                        let e: LogEntry = serde_json::from_value(v["entry"].clone())
                            .unwrap_or_else(|e| panic!("{e}"));
                        if e.detail
                            .as_deref()
                            .is_some_and(|d| d.starts_with("publish c#"))
                        {
                            publishes += 1;
                        }
                    }
                    _ => {}
                }
            }
            drop(to_server);
            (first, replies)
        };
        let (r, (first, replies)) = tokio::join!(task, client);
        r.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first, Some(json!("listening")));
        assert_eq!(replies[0]["seq"], 1);
        assert_eq!(replies[1]["seq"], 2);
        assert_eq!(replies[2]["ok"], true);
        assert_eq!(replies[3]["ok"], false);
        assert_eq!(server.faults().len(), 1);
        server.shutdown().await;
    }
}
