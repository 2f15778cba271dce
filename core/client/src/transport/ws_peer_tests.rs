//! The client's RFC 6455 framing against a real tokio-tungstenite server (and raw bytes where
//! tungstenite would refuse to send what a broken server sends): fragments, control frames
//! between them, ping → pong, the close handshake both ways, LIMIT-1 without allocating the
//! claimed length, invalid UTF-8, masking of every client frame, partial reads, `wss://`.

use super::ws::{settings, WsConn};
use super::Io;
use crate::inbox::Inbox;
use futures_util::{SinkExt, StreamExt};
use std::future::poll_fn;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tether_engine::{ConnId, OpenRequest, TransportEvent, TransportFailure, TransportKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const WAIT: Duration = Duration::from_secs(10);

fn io(endpoint: &str, read_buffer: usize, max_frame_bytes: usize) -> Arc<Io> {
    io_with_tls(
        endpoint,
        read_buffer,
        max_frame_bytes,
        super::http::shared_tls().expect("tls"),
    )
}

fn io_with_tls(
    endpoint: &str,
    read_buffer: usize,
    max_frame_bytes: usize,
    tls: Arc<rustls::ClientConfig>,
) -> Arc<Io> {
    Arc::new(Io {
        endpoint: endpoint.parse().expect("endpoint"),
        http: OnceLock::new(),
        tls,
        ws: settings(read_buffer, max_frame_bytes),
        max_frame_bytes,
        events: Arc::new(Inbox::new(8)),
    })
}

fn request() -> OpenRequest {
    OpenRequest {
        conn: ConnId(1),
        transport: TransportKind::WebSocket,
        cursor: None,
        channels: vec!["feed".into()],
        token: None,
        poll_hold: Duration::from_secs(1),
    }
}

/// Poll `conn` until `done` holds for the events so far (or `WAIT` passes).
async fn until(conn: &mut WsConn, done: impl Fn(&[TransportEvent]) -> bool) -> Vec<TransportEvent> {
    let mut seen = Vec::new();
    let collect = async {
        while !done(&seen) {
            let mut out = Vec::new();
            poll_fn(|cx| conn.poll(cx, &mut out)).await;
            seen.extend(out);
        }
    };
    let finished = tokio::time::timeout(WAIT, collect).await.is_ok();
    assert!(finished, "timed out; events so far: {seen:?}");
    seen
}

fn texts(events: &[TransportEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            TransportEvent::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn ended(events: &[TransportEvent]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, TransportEvent::Failed(_) | TransportEvent::Closed { .. }))
}

/// A one-connection tokio-tungstenite server running `serve` on the accepted socket.
async fn tungstenite_server<F, Fut>(serve: F) -> (String, tokio::task::JoinHandle<()>)
where
    F: FnOnce(WebSocketStream<TcpStream>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
        serve(ws).await;
    });
    (format!("http://{addr}/tether"), task)
}

fn data_frame(opcode: Data, payload: &[u8], fin: bool) -> Message {
    Message::Frame(Frame::message(payload.to_vec(), OpCode::Data(opcode), fin))
}

/// The next message the server reads that is not a pong or ping.
async fn next_non_control(ws: &mut WebSocketStream<TcpStream>) -> Option<Message> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Pong(_) | Message::Ping(_))) => {}
            Some(Ok(m)) => return Some(m),
            _ => return None,
        }
    }
}

#[tokio::test]
async fn ws_frames_fragments_with_control_frames_between_them_make_one_message() {
    let (pong_tx, pong_rx) = tokio::sync::oneshot::channel();
    let (endpoint, server) = tungstenite_server(|mut ws| async move {
        let frames = [
            data_frame(Data::Text, b"hel", false),
            Message::Frame(Frame::ping(b"p1".to_vec())),
            data_frame(Data::Continue, b"lo ", false),
            Message::Frame(Frame::pong(b"unasked".to_vec())),
            // "é" split across two fragments: only the whole message must be UTF-8.
            data_frame(Data::Continue, &[b'w', 0xC3], false),
            data_frame(Data::Continue, &[0xA9, b'!'], true),
            Message::text("after"),
            data_frame(Data::Binary, &[1, 2], false),
            data_frame(Data::Continue, &[3], true),
        ];
        for f in frames {
            ws.send(f).await.expect("send");
        }
        // The client answers the ping with its payload.
        loop {
            match ws.next().await {
                Some(Ok(Message::Pong(p))) => {
                    let _ = pong_tx.send(p.to_vec());
                    break;
                }
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        let _ = ws.next().await;
    })
    .await;
    let mut conn = WsConn::open(
        &io(&endpoint, 64 * 1024, 1 << 20),
        request(),
        tracing::Span::none(),
    );
    let events = until(&mut conn, |ev| {
        ev.iter().any(|e| matches!(e, TransportEvent::Binary(_)))
    })
    .await;
    assert!(matches!(events[0], TransportEvent::Opened), "{events:?}");
    assert_eq!(texts(&events), ["hello wé!", "after"]);
    assert!(events
        .iter()
        .any(|e| matches!(e, TransportEvent::Binary(b) if b == &[1, 2, 3])));
    assert!(!ended(&events), "{events:?}");
    // Keep polling so the pong is written.
    let pong = tokio::time::timeout(WAIT, async {
        let mut out = Vec::new();
        let answer = pong_rx;
        tokio::pin!(answer);
        loop {
            tokio::select! {
                p = &mut answer => return p.ok(),
                _ = poll_fn(|cx| conn.poll(cx, &mut out)) => {}
            }
        }
    })
    .await
    .ok()
    .flatten();
    assert_eq!(pong.as_deref(), Some(&b"p1"[..]));
    drop(conn);
    let _ = server.await;
}

#[tokio::test]
async fn ws_frames_ping_is_answered_by_a_pong_with_its_payload_while_idle() {
    let payload: Vec<u8> = (0..125u8).collect();
    let sent = payload.clone();
    let (endpoint, server) = tungstenite_server(|mut ws| async move {
        ws.send(Message::text("hello")).await.expect("send");
        ws.send(Message::Ping(sent.clone().into()))
            .await
            .expect("ping");
        let got = loop {
            match ws.next().await {
                Some(Ok(Message::Pong(p))) => break p.to_vec(),
                Some(Ok(_)) => {}
                other => panic!("no pong: {other:?}"),
            }
        };
        assert_eq!(got, sent);
        ws.send(Message::text("pong seen")).await.expect("send");
        let _ = ws.next().await;
    })
    .await;
    let mut conn = WsConn::open(
        &io(&endpoint, 64 * 1024, 1 << 20),
        request(),
        tracing::Span::none(),
    );
    let events = until(&mut conn, |ev| texts(ev).contains(&"pong seen")).await;
    assert_eq!(texts(&events), ["hello", "pong seen"]);
    drop(conn);
    let _ = server.await;
}

#[tokio::test]
async fn ws_frames_server_close_is_reported_with_code_and_reason_and_echoed() {
    let (endpoint, server) = tungstenite_server(|mut ws| async move {
        ws.send(Message::text("hello")).await.expect("send");
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(4001),
            reason: "policy: go away".into(),
        })))
        .await
        .expect("close");
        // tungstenite reads the client's answer to complete the handshake.
        match ws.next().await {
            Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 4001),
            other => panic!("no close echo: {other:?}"),
        }
        assert!(
            ws.next().await.is_none(),
            "the stream ends after the handshake"
        );
    })
    .await;
    let mut conn = WsConn::open(
        &io(&endpoint, 64 * 1024, 1 << 20),
        request(),
        tracing::Span::none(),
    );
    let events = until(&mut conn, ended).await;
    assert_eq!(texts(&events), ["hello"]);
    assert!(
        events.iter().any(|e| matches!(e,
            TransportEvent::Closed { code: Some(4001), reason } if reason == "policy: go away")),
        "{events:?}"
    );
    conn.finish();
    tokio::time::timeout(WAIT, server)
        .await
        .expect("server done")
        .expect("server checks");
}

#[tokio::test]
async fn ws_frames_client_close_sends_code_and_reason() {
    let (endpoint, server) = tungstenite_server(|mut ws| async move {
        ws.send(Message::text("hello")).await.expect("send");
        match next_non_control(&mut ws).await {
            Some(Message::Close(Some(f))) => {
                assert_eq!(u16::from(f.code), 1000);
                assert_eq!(f.reason.as_str(), "client closing");
            }
            other => panic!("no close frame: {other:?}"),
        }
    })
    .await;
    let mut conn = WsConn::open(
        &io(&endpoint, 64 * 1024, 1 << 20),
        request(),
        tracing::Span::none(),
    );
    until(&mut conn, |ev| !texts(ev).is_empty()).await;
    conn.close(1000, "client closing");
    tokio::time::timeout(WAIT, server)
        .await
        .expect("server done")
        .expect("server checks");
}

#[tokio::test]
async fn limit_1_oversized_frame_is_refused_from_its_header_without_allocating_it() {
    let (endpoint, server) = tungstenite_server(|mut ws| async move {
        // A text frame claiming 2^62 bytes: allocating it would abort the process.
        let mut head = vec![0x81, 127];
        head.extend_from_slice(&(1u64 << 62).to_be_bytes());
        head.extend_from_slice(b"{\"type\":");
        ws.get_mut().write_all(&head).await.expect("write");
        // The client says why it goes (1009).
        match next_non_control(&mut ws).await {
            Some(Message::Close(Some(f))) => assert_eq!(u16::from(f.code), 1009),
            other => panic!("no close 1009: {other:?}"),
        }
    })
    .await;
    let mut conn = WsConn::open(
        &io(&endpoint, 64 * 1024, 1 << 20),
        request(),
        tracing::Span::none(),
    );
    let events = until(&mut conn, ended).await;
    assert!(
        events.iter().any(|e| matches!(
            e,
            TransportEvent::Failed(TransportFailure::FrameTooLarge(_))
        )),
        "{events:?}"
    );
    conn.finish();
    tokio::time::timeout(WAIT, server)
        .await
        .expect("server done")
        .expect("server checks");
}

#[tokio::test]
async fn limit_1_fragments_adding_up_past_the_limit_are_refused() {
    let (endpoint, server) = tungstenite_server(|mut ws| async move {
        let part = vec![b'x'; 3000];
        ws.send(data_frame(Data::Text, &part, false))
            .await
            .expect("send");
        ws.send(data_frame(Data::Continue, &part, true))
            .await
            .expect("send");
        match next_non_control(&mut ws).await {
            Some(Message::Close(Some(f))) => assert_eq!(u16::from(f.code), 1009),
            other => panic!("no close 1009: {other:?}"),
        }
    })
    .await;
    // 4096 is below the engine's floor for the option, not for the transport.
    let mut conn = WsConn::open(
        &io(&endpoint, 64 * 1024, 4096),
        request(),
        tracing::Span::none(),
    );
    let events = until(&mut conn, ended).await;
    assert!(texts(&events).is_empty(), "{events:?}");
    assert!(
        events.iter().any(|e| matches!(
            e,
            TransportEvent::Failed(TransportFailure::FrameTooLarge(_))
        )),
        "{events:?}"
    );
    conn.finish();
    tokio::time::timeout(WAIT, server)
        .await
        .expect("server done")
        .expect("server checks");
}

#[tokio::test]
async fn limit_1_a_message_at_the_limit_passes_through_a_small_read_buffer() {
    // Larger than half the read buffer: read straight into its own allocation.
    let big = "y".repeat(100_000);
    let small = "z".repeat(600);
    let (b, s) = (big.clone(), small.clone());
    let (endpoint, server) = tungstenite_server(|mut ws| async move {
        for t in [&s, &b, &s] {
            ws.send(Message::text(t.as_str())).await.expect("send");
        }
        let _ = ws.next().await;
    })
    .await;
    let mut conn = WsConn::open(
        &io(&endpoint, 1024, 100_000),
        request(),
        tracing::Span::none(),
    );
    let events = until(&mut conn, |ev| texts(ev).len() == 3 || ended(ev)).await;
    assert_eq!(
        texts(&events),
        [small.as_str(), big.as_str(), small.as_str()]
    );
    drop(conn);
    let _ = server.await;
}

#[tokio::test]
async fn err_1_invalid_utf8_in_a_text_message_is_rejected_and_the_connection_failed_1007() {
    let (endpoint, server) = tungstenite_server(|mut ws| async move {
        ws.send(Message::text("hello")).await.expect("send");
        ws.send(data_frame(Data::Text, &[b'{', 0xFF, 0xFE, b'}'], true))
            .await
            .expect("send");
        match next_non_control(&mut ws).await {
            Some(Message::Close(Some(f))) => assert_eq!(u16::from(f.code), 1007),
            other => panic!("no close 1007: {other:?}"),
        }
    })
    .await;
    let mut conn = WsConn::open(
        &io(&endpoint, 64 * 1024, 1 << 20),
        request(),
        tracing::Span::none(),
    );
    let events = until(&mut conn, ended).await;
    assert_eq!(texts(&events), ["hello"]);
    // The engine is handed bytes that are not UTF-8 (it reports `invalid_utf8`), then the failure.
    let at = events
        .iter()
        .position(|e| matches!(e, TransportEvent::Binary(b) if std::str::from_utf8(b).is_err()))
        .expect("non-UTF-8 bytes for the engine");
    assert!(matches!(
        events[at + 1],
        TransportEvent::Failed(TransportFailure::Io(_))
    ));
    conn.finish();
    tokio::time::timeout(WAIT, server)
        .await
        .expect("server done")
        .expect("server checks");
}

#[tokio::test]
async fn ws_frames_protocol_violations_fail_the_connection_with_1002() {
    for (what, bytes) in [
        (
            "masked server frame",
            vec![0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2],
        ),
        ("reserved opcode", vec![0x83, 0]),
        ("continuation outside a message", vec![0x80, 1, b'x']),
        ("fragmented ping", vec![0x09, 0]),
    ] {
        let (endpoint, server) = tungstenite_server(move |mut ws| async move {
            ws.get_mut().write_all(&bytes).await.expect("write");
            // tungstenite may refuse our close after the garbage it saw itself.
            if let Some(Message::Close(Some(f))) = next_non_control(&mut ws).await {
                assert_eq!(u16::from(f.code), 1002, "{what}");
            }
        })
        .await;
        let mut conn = WsConn::open(
            &io(&endpoint, 64 * 1024, 1 << 20),
            request(),
            tracing::Span::none(),
        );
        let events = until(&mut conn, ended).await;
        assert!(
            events
                .iter()
                .any(|e| matches!(e, TransportEvent::Failed(TransportFailure::Io(m)) if m.contains("protocol"))),
            "{what}: {events:?}"
        );
        assert!(texts(&events).is_empty(), "{what}");
        conn.finish();
        let _ = tokio::time::timeout(WAIT, server).await;
    }
}

#[tokio::test]
async fn ws_frames_bytes_arriving_one_at_a_time_still_make_frames() {
    let (endpoint, server) = tungstenite_server(|mut ws| async move {
        let mut bytes = vec![0x81, 126];
        bytes.extend_from_slice(&300u16.to_be_bytes());
        bytes.extend(std::iter::repeat_n(b'a', 300));
        bytes.extend_from_slice(&[0x89, 1, b'p', 0x81, 2, b'o', b'k']);
        let tcp = ws.get_mut();
        for b in bytes {
            tcp.write_all(&[b]).await.expect("write");
            tcp.flush().await.expect("flush");
            tokio::task::yield_now().await;
        }
        let _ = ws.next().await;
    })
    .await;
    let mut conn = WsConn::open(
        &io(&endpoint, 1024, 1 << 20),
        request(),
        tracing::Span::none(),
    );
    let events = until(&mut conn, |ev| texts(ev).len() == 2 || ended(ev)).await;
    assert_eq!(texts(&events), ["a".repeat(300).as_str(), "ok"]);
    drop(conn);
    let _ = server.await;
}

#[tokio::test]
async fn ws_frames_every_client_frame_is_masked() {
    let payloads = vec![
        "s".repeat(5),
        "m".repeat(300),
        "l".repeat(70_000),
        "{\"type\":\"publish\"}".to_owned(),
    ];
    let expect = payloads.clone();
    let (endpoint, server) = tungstenite_server(move |mut ws| async move {
        ws.send(Message::text("hello")).await.expect("send");
        // Read the client's bytes ourselves, frame by frame.
        let tcp = ws.get_mut();
        let mut keys = Vec::new();
        for want in &expect {
            let mut h = [0u8; 2];
            tcp.read_exact(&mut h).await.expect("header");
            assert_eq!(h[0], 0x81, "final text frame");
            assert_eq!(h[1] & 0x80, 0x80, "mask bit set");
            let len = match h[1] & 0x7F {
                126 => {
                    let mut e = [0u8; 2];
                    tcp.read_exact(&mut e).await.expect("len");
                    u64::from(u16::from_be_bytes(e))
                }
                127 => {
                    let mut e = [0u8; 8];
                    tcp.read_exact(&mut e).await.expect("len");
                    u64::from_be_bytes(e)
                }
                n => u64::from(n),
            };
            let mut key = [0u8; 4];
            tcp.read_exact(&mut key).await.expect("mask");
            let mut body = vec![0u8; len as usize];
            tcp.read_exact(&mut body).await.expect("body");
            if want.len() > 8 {
                assert_ne!(
                    body,
                    want.as_bytes(),
                    "the payload is not sent in the clear"
                );
            }
            for (i, b) in body.iter_mut().enumerate() {
                *b ^= key[i % 4];
            }
            assert_eq!(body, want.as_bytes());
            keys.push(key);
        }
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), expect.len(), "a fresh key per frame");
    })
    .await;
    let mut conn = WsConn::open(
        &io(&endpoint, 64 * 1024, 1 << 20),
        request(),
        tracing::Span::none(),
    );
    until(&mut conn, |ev| !texts(ev).is_empty()).await;
    conn.transmit(payloads);
    let checked = async {
        let mut server = server;
        loop {
            let mut out = Vec::new();
            tokio::select! {
                r = &mut server => return r,
                _ = poll_fn(|cx| conn.poll(cx, &mut out)) => {}
            }
        }
    };
    tokio::time::timeout(WAIT, checked)
        .await
        .expect("server done")
        .expect("server checks");
}

#[tokio::test]
async fn ws_frames_a_tungstenite_server_accepts_client_frames() {
    // tungstenite refuses unmasked client frames (RFC 6455 §5.1): these arrive intact.
    let (endpoint, server) = tungstenite_server(|mut ws| async move {
        ws.send(Message::text("hello")).await.expect("send");
        for want in ["one", &"two".repeat(30_000)] {
            match next_non_control(&mut ws).await {
                Some(Message::Text(t)) => assert_eq!(t.as_str(), want),
                other => panic!("expected {:.10}: {other:?}", want),
            }
        }
        ws.send(Message::text("both read")).await.expect("send");
        let _ = ws.next().await;
    })
    .await;
    let mut conn = WsConn::open(
        &io(&endpoint, 64 * 1024, 1 << 20),
        request(),
        tracing::Span::none(),
    );
    until(&mut conn, |ev| !texts(ev).is_empty()).await;
    conn.transmit(vec!["one".into(), "two".repeat(30_000)]);
    let events = until(&mut conn, |ev| {
        texts(ev).contains(&"both read") || ended(ev)
    })
    .await;
    assert_eq!(texts(&events), ["both read"]);
    drop(conn);
    let _ = server.await;
}

#[tokio::test]
async fn ws_frames_wss_over_tls_reaches_the_server() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../conformance/server/tests/fixtures");
    let server_tls = tether_server::tls::load_pem(
        &fixtures.join("tls-cert.pem"),
        &fixtures.join("tls-key.pem"),
    )
    .expect("server tls");
    let server = tether_server::Server::start(tether_server::ServerConfig {
        tls: Some(server_tls),
        ..tether_server::ServerConfig::default()
    })
    .await
    .expect("server");
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls::pki_types::CertificateDer::pem_file_iter(fixtures.join("tls-ca.pem"))
        .expect("ca file")
    {
        roots.add(ca.expect("ca")).expect("root");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let endpoint = server.endpoint_url();
    assert!(endpoint.starts_with("https://"), "{endpoint}");
    let io = io_with_tls(&endpoint, 64 * 1024, 1 << 20, Arc::new(tls));
    let mut conn = WsConn::open(&io, request(), tracing::Span::none());
    let events = until(&mut conn, |ev| {
        texts(ev).iter().any(|t| t.contains("\"subscribed\"")) || ended(ev)
    })
    .await;
    assert!(matches!(events[0], TransportEvent::Opened), "{events:?}");
    let t = texts(&events);
    assert!(t[0].contains("\"hello\""), "{t:?}");
    // A publish over the same TLS stream comes back as a message on the channel.
    conn.transmit(vec![
        r#"{"type":"publish","channel":"feed","id":"p1","data":{"n":1}}"#.into(),
    ]);
    let events = until(&mut conn, |ev| {
        texts(ev).iter().any(|t| t.contains("\"msg\"")) || ended(ev)
    })
    .await;
    assert!(
        texts(&events).iter().any(|t| t.contains("\"n\":1")),
        "{events:?}"
    );
    conn.close(1000, "done");
}
