//! The browser driver's pieces in real headless Chromium (wasm-bindgen-test): the IndexedDB store, the timer and clock, the token provider, network events, publish promises.
//!
//! No server is needed: an endpoint nobody listens on makes every attempt fail the way a
//! server that is down does (the WebSocket closes before it opens and the diagnosis fetch
//! gets no answer), which is what these tests want. The transports against a live server
//! are the conformance suite's job (`conformance/adapters/browser`).
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Function, Promise, Reflect};
use std::cell::RefCell;
use std::rc::Rc;
use tether_engine::{OutboxRecord, Store};
use tether_wasm::store::idb::Writer;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// An endpoint with no server: port 9 (discard) on loopback refuses connections.
const NOBODY: &str = "http://127.0.0.1:9/tether";

fn record(id: &str) -> OutboxRecord {
    OutboxRecord {
        id: id.into(),
        channel: "c".into(),
        data: "{\"n\":1}".into(),
        enqueued_unix_ms: 1,
    }
}

async fn sleep(ms: i32) {
    let p = Promise::new(&mut |resolve, _| {
        let g = js_sys::global();
        let set: Function = Reflect::get(&g, &"setTimeout".into())
            .unwrap()
            .unchecked_into();
        set.call2(&JsValue::NULL, &resolve, &JsValue::from(ms))
            .unwrap();
    });
    JsFuture::from(p).await.unwrap();
}

fn unique(name: &str) -> String {
    format!("{name}-{}", (js_sys::Math::random() * 1e9) as u64)
}

/// The events a client reported, as JSON objects.
#[derive(Clone, Default)]
struct Seen(Rc<RefCell<Vec<JsValue>>>);

impl Seen {
    fn callback(&self) -> Function {
        let seen = self.0.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| seen.borrow_mut().push(ev))
            .into_js_value()
            .unchecked_into()
    }
    fn types(&self) -> Vec<String> {
        self.0
            .borrow()
            .iter()
            .filter_map(|e| Reflect::get(e, &"type".into()).ok()?.as_string())
            .collect()
    }
    fn states(&self) -> Vec<(String, String)> {
        self.0
            .borrow()
            .iter()
            .filter(|e| {
                Reflect::get(e, &"type".into())
                    .ok()
                    .and_then(|t| t.as_string())
                    .as_deref()
                    == Some("statechange")
            })
            .map(|e| {
                let to = Reflect::get(e, &"to".into()).unwrap();
                let name = Reflect::get(&to, &"name".into())
                    .unwrap()
                    .as_string()
                    .unwrap();
                let cause = Reflect::get(e, &"cause".into()).unwrap();
                let cause = Reflect::get(&cause, &"name".into())
                    .unwrap()
                    .as_string()
                    .unwrap();
                (name, cause)
            })
            .collect()
    }
}

fn options(extra: &str) -> String {
    format!(
        r#"{{"endpoint":"{NOBODY}","transports":["websocket"],"policy":{{"floor_ms":50,"base_ms":200,"cap_ms":400}}{extra}}}"#
    )
}

fn state_name(c: &tether_wasm::WasmClient) -> String {
    let v: serde_json::Value = serde_json::from_str(&c.state()).unwrap();
    v["name"].as_str().unwrap().to_owned()
}

#[wasm_bindgen_test]
async fn web_4_outbox_8_indexeddb_keeps_records_in_order_across_reopen() {
    let name = unique("order");
    let loaded = Writer::open(&name).await.unwrap();
    let mut mirror = loaded.mirror;
    for id in ["a", "b", "c"] {
        mirror.append(&record(id)).unwrap();
    }
    mirror.remove("b").unwrap();
    loaded.writer.flush();
    // Queued means durable: the promise of "c" resolves once its transaction completed.
    JsFuture::from(loaded.writer.durable("c")).await.unwrap();
    sleep(50).await;
    let again = Writer::open(&name).await.unwrap();
    let mut m2 = again.mirror;
    let ids: Vec<String> = m2.load().unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, vec!["a".to_string(), "c".to_string()]);
    // Keys continue after the last one: a new record sorts after the restored ones.
    m2.append(&record("d")).unwrap();
    again.writer.flush();
    JsFuture::from(again.writer.durable("d")).await.unwrap();
    let third = Writer::open(&name).await.unwrap();
    let mut m3 = third.mirror;
    let ids: Vec<String> = m3.load().unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, vec!["a".to_string(), "c".to_string(), "d".to_string()]);
}

#[wasm_bindgen_test]
async fn web_4_durable_resolves_for_a_record_already_written() {
    let loaded = Writer::open(&unique("durable")).await.unwrap();
    // Nothing in flight for an unknown key: already durable (nothing to wait for).
    JsFuture::from(loaded.writer.durable("never-written"))
        .await
        .unwrap();
}

#[wasm_bindgen_test]
async fn outbox_2_publish_is_queued_durably_before_it_resolves() {
    let seen = Seen::default();
    let store = unique("pub");
    let c = tether_wasm::create_client(
        options(&format!(r#","store":"{store}""#)),
        seen.callback(),
        None,
    )
    .await
    .unwrap();
    let p = c.publish("room", r#"{"text":"hi"}"#, None).unwrap();
    JsFuture::from(p.queued()).await.unwrap();
    assert_eq!(c.outbox_length(), 1);
    // The record is in the database: a second client on the same store restores it.
    let d = tether_wasm::create_client(
        options(&format!(r#","store":"{store}""#)),
        seen.callback(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(d.outbox_length(), 1);
    // Closing the first client rejects its pending publish with `closed` (CONN-3).
    c.close().unwrap();
    let err = JsFuture::from(p.outcome()).await.unwrap_err();
    assert_eq!(
        Reflect::get(&err, &"code".into())
            .unwrap()
            .as_string()
            .as_deref(),
        Some("closed")
    );
    d.close().unwrap();
}

#[wasm_bindgen_test]
async fn err_1_refused_calls_carry_their_codes() {
    let c = tether_wasm::create_client(options(""), Seen::default().callback(), None)
        .await
        .unwrap();
    let code = |e: JsValue| {
        Reflect::get(&e, &"code".into())
            .unwrap()
            .as_string()
            .unwrap()
    };
    assert_eq!(
        code(c.subscribe("bad name!").unwrap_err()),
        "invalid_channel"
    );
    assert_eq!(
        code(c.publish("c", "{not json", None).err().unwrap()),
        "bad_request"
    );
    assert_eq!(code(c.set_network("sideways").unwrap_err()), "bad_request");
    let bad = tether_wasm::create_client(
        r#"{"endpoint":"ftp://x"}"#.into(),
        Seen::default().callback(),
        None,
    )
    .await
    .err()
    .unwrap();
    assert_eq!(code(bad), "bad_request");
    c.close().unwrap();
    assert_eq!(code(c.publish("c", "1", None).err().unwrap()), "closed");
}

#[wasm_bindgen_test]
async fn conn_2_unreachable_server_reconnects_with_backoff() {
    let seen = Seen::default();
    let c = tether_wasm::create_client(options(""), seen.callback(), None)
        .await
        .unwrap();
    c.connect().unwrap();
    // The WebSocket closes before it opens; the diagnosis fetch gets no answer: the server is
    // unreachable, not blocked (FALLBACK-3), so the client backs off on the same rung.
    for _ in 0..100 {
        if seen.types().iter().any(|t| t == "reconnectscheduled") {
            break;
        }
        sleep(20).await;
    }
    let states = seen.states();
    assert_eq!(states[0], ("connecting".into(), "user_connect".into()));
    assert!(
        states.contains(&("reconnecting".into(), "transport_error".into())),
        "{states:?}"
    );
    assert!(
        !seen.types().iter().any(|t| t == "fallback"),
        "unreachable is not blocked"
    );
    c.close().unwrap();
    assert_eq!(state_name(&c), "closed");
}

#[wasm_bindgen_test]
async fn net_1_offline_event_stops_attempts_and_online_resumes() {
    let seen = Seen::default();
    let c = tether_wasm::create_client(options(""), seen.callback(), None)
        .await
        .unwrap();
    c.connect().unwrap();
    let window = js_sys::global().unchecked_into::<web_sys::EventTarget>();
    window
        .dispatch_event(&web_sys::Event::new("offline").unwrap())
        .unwrap();
    assert!(seen
        .states()
        .contains(&("reconnecting".into(), "network_offline".into())));
    let v: serde_json::Value = serde_json::from_str(&c.state()).unwrap();
    assert_eq!(
        v["delayMs"],
        serde_json::Value::Null,
        "NET-1: no delay while offline"
    );
    window
        .dispatch_event(&web_sys::Event::new("online").unwrap())
        .unwrap();
    // NET-2: an attempt is scheduled at U(0, base).
    let sched: Vec<JsValue> = seen
        .0
        .borrow()
        .iter()
        .filter(|e| {
            Reflect::get(e, &"type".into())
                .unwrap()
                .as_string()
                .as_deref()
                == Some("reconnectscheduled")
        })
        .cloned()
        .collect();
    let last = sched.last().expect("scheduled after online");
    let cause = Reflect::get(
        &Reflect::get(last, &"cause".into()).unwrap(),
        &"name".into(),
    )
    .unwrap();
    assert_eq!(cause.as_string().as_deref(), Some("network_online"));
    let delay = Reflect::get(last, &"delayMs".into())
        .unwrap()
        .as_f64()
        .unwrap();
    assert!((0.0..=200.0).contains(&delay), "{delay}");
    c.close().unwrap();
}

#[wasm_bindgen_test]
async fn auth_1_a_fatal_provider_error_fails_without_a_retry() {
    let seen = Seen::default();
    let calls = Rc::new(RefCell::new(Vec::<bool>::new()));
    let calls2 = calls.clone();
    let provider: Function = Closure::<dyn FnMut(bool) -> Promise>::new(move |forced: bool| {
        calls2.borrow_mut().push(forced);
        let e = js_sys::Error::new("no credentials");
        Reflect::set(&e, &"fatal".into(), &JsValue::TRUE).unwrap();
        Promise::reject(&e)
    })
    .into_js_value()
    .unchecked_into();
    let c = tether_wasm::create_client(options(r#","auth":true"#), seen.callback(), Some(provider))
        .await
        .unwrap();
    c.connect().unwrap();
    for _ in 0..50 {
        if state_name(&c) == "failed" {
            break;
        }
        sleep(10).await;
    }
    let v: serde_json::Value = serde_json::from_str(&c.state()).unwrap();
    assert_eq!(v["name"], "failed");
    assert_eq!(v["reason"], "auth_failed");
    assert_eq!(*calls.borrow(), vec![false]);
    // CONN-5: terminal, no retry (the conformance case also checks the server saw no handshake).
    assert!(
        !seen.types().iter().any(|t| t == "reconnectscheduled"),
        "no retry after a fatal provider error"
    );
    let states: Vec<String> = seen.states().into_iter().map(|(s, _)| s).collect();
    assert_eq!(states, vec!["connecting".to_string(), "failed".to_string()]);
}

#[wasm_bindgen_test]
async fn backoff_7_the_same_seed_draws_the_same_delays() {
    async fn delays(seed: &str) -> Vec<f64> {
        let seen = Seen::default();
        let c = tether_wasm::create_client(
            options(&format!(r#","seed":"{seed}","watch_network":false"#)),
            seen.callback(),
            None,
        )
        .await
        .unwrap();
        c.connect().unwrap();
        let window = js_sys::global().unchecked_into::<web_sys::EventTarget>();
        let _ = window;
        for _ in 0..200 {
            if seen
                .types()
                .iter()
                .filter(|t| *t == "reconnectscheduled")
                .count()
                >= 2
            {
                break;
            }
            sleep(20).await;
        }
        c.close().unwrap();
        let events = seen.0.borrow();
        let delays: Vec<f64> = events
            .iter()
            .filter(|e| {
                Reflect::get(e, &"type".into())
                    .unwrap()
                    .as_string()
                    .as_deref()
                    == Some("reconnectscheduled")
            })
            .map(|e| {
                Reflect::get(e, &"delayMs".into())
                    .unwrap()
                    .as_f64()
                    .unwrap()
            })
            .take(2)
            .collect();
        delays
    }
    let a = delays("42").await;
    let b = delays("42").await;
    let c = delays("43").await;
    assert_eq!(a.len(), 2);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[wasm_bindgen_test]
fn clock_is_monotonic_microseconds() {
    let a = tether_wasm::clock::now();
    let b = tether_wasm::clock::now();
    assert!(b >= a);
    assert!(tether_wasm::clock::wall_unix_ms() > 1_600_000_000_000);
    assert_ne!(
        tether_wasm::clock::random_u64(),
        tether_wasm::clock::random_u64()
    );
}

#[wasm_bindgen_test]
async fn timer_fires_once_at_its_deadline() {
    let fired = Rc::new(RefCell::new(0u32));
    let f2 = fired.clone();
    let now = tether_wasm::clock::now();
    let _t = tether_wasm::clock::Timer::arm(
        now,
        now + core::time::Duration::from_millis(30),
        move || *f2.borrow_mut() += 1,
    );
    sleep(5).await;
    assert_eq!(*fired.borrow(), 0, "not early");
    sleep(80).await;
    assert_eq!(*fired.borrow(), 1);
    // A dropped timer never fires.
    let f3 = fired.clone();
    let t = tether_wasm::clock::Timer::arm(now, tether_wasm::clock::now(), move || {
        *f3.borrow_mut() += 10
    });
    drop(t);
    sleep(30).await;
    assert_eq!(*fired.borrow(), 1);
    let _ = Array::new();
}
