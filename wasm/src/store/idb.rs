//! IndexedDB under the mirror: opening and loading the database, then carrying out the mirror's writes in order and telling when each record is durable.
//!
//! The IndexedDB calls are a few lines of JavaScript (`idb.js`, bundled by wasm-bindgen)
//! that turn requests and transactions into promises, so no Rust closure has to outlive a
//! transaction whose other outcome never fires.
//!
//! Database `tether:<name>`, version 1: object store `outbox` (out-of-line numeric keys: the
//! queue order; values are the records as JSON text) and object store `memo` (one value,
//! key `"memo"`, the memo as JSON text).

use super::{Keyed, Mirror, Write};
use crate::js;
use js_sys::{Array, Promise, Reflect};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use tether_engine::{Memo, OutboxRecord};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};

#[wasm_bindgen(module = "/src/store/idb.js")]
extern "C" {
    /// Open (and create on first use) the database; rejects with `{code, message}`.
    fn idb_open(factory: &JsValue, name: &str) -> Promise;
    /// `[[key, value]...]` of the outbox in key order, and the memo value (or undefined).
    fn idb_load(db: &JsValue) -> Promise;
    /// One put in its own transaction; resolves on `complete`, rejects with `{code, message}`.
    fn idb_put(db: &JsValue, key: f64, value: &str, strict: bool) -> Promise;
    fn idb_delete(db: &JsValue, key: f64) -> Promise;
    fn idb_memo(db: &JsValue, value: &str) -> Promise;
}

/// Carries out the mirror's writes on one open database.
pub struct Writer {
    db: JsValue,
    mirror: Mirror,
    /// The put of each record not yet durable, by idempotency key.
    in_flight: Rc<RefCell<HashMap<String, Promise>>>,
}

/// What was in the database at start.
pub struct Loaded {
    pub writer: Writer,
    pub mirror: Mirror,
}

impl Writer {
    /// Open `tether:<name>` and read it whole (OUTBOX-8: the outbox restored in order).
    pub async fn open(name: &str) -> Result<Loaded, String> {
        let factory = js::indexed_db().ok_or("IndexedDB is not available here")?;
        let db = JsFuture::from(idb_open(&factory, &format!("tether:{name}")))
            .await
            .map_err(|e| js::describe(&e))?;
        let loaded = JsFuture::from(idb_load(&db))
            .await
            .map_err(|e| js::describe(&e))?;
        let (records, memo) = decode_loaded(&loaded)?;
        let mirror = Mirror::persistent(records, memo);
        Ok(Loaded {
            writer: Writer {
                db,
                mirror: mirror.clone(),
                in_flight: Rc::default(),
            },
            mirror,
        })
    }

    /// Issue every write the mirror logged, in order.
    pub fn flush(&self) {
        for w in self.mirror.take_writes() {
            match w {
                Write::Put { key, record } => {
                    let Ok(value) = serde_json::to_string(&record) else {
                        self.mirror.mark_broken("a record could not be encoded");
                        continue;
                    };
                    let put = idb_put(&self.db, key as f64, &value, true);
                    self.in_flight
                        .borrow_mut()
                        .insert(record.id.clone(), put.clone());
                    let in_flight = self.in_flight.clone();
                    let mirror = self.mirror.clone();
                    let id = record.id;
                    spawn_local(async move {
                        let result = JsFuture::from(put.clone()).await;
                        {
                            let mut f = in_flight.borrow_mut();
                            // A newer put of the same id (a re-publish) keeps its own entry.
                            if f.get(&id).is_some_and(|p| {
                                JsValue::from(p.clone()) == JsValue::from(put.clone())
                            }) {
                                f.remove(&id);
                            }
                        }
                        if let Err(e) = result {
                            mirror.mark_broken(&js::describe(&e));
                        }
                    });
                }
                Write::Delete { key } => self.background(idb_delete(&self.db, key as f64)),
                Write::Memo(memo) => match serde_json::to_string(&memo) {
                    Ok(v) => self.background(idb_memo(&self.db, &v)),
                    Err(_) => self.mirror.mark_broken("the memo could not be encoded"),
                },
            }
        }
    }

    /// A write nobody waits for; a failure still marks the store broken.
    fn background(&self, p: Promise) {
        let mirror = self.mirror.clone();
        spawn_local(async move {
            if let Err(e) = JsFuture::from(p).await {
                mirror.mark_broken(&js::describe(&e));
            }
        });
    }

    /// A promise that resolves once the record `id` is durable (at once when it already is),
    /// or rejects with `{code: "store_failed", message}`.
    pub fn durable(&self, id: &str) -> Promise {
        match self.in_flight.borrow().get(id) {
            Some(p) => p.clone(),
            None => Promise::resolve(&JsValue::UNDEFINED),
        }
    }
}

fn decode_loaded(v: &JsValue) -> Result<(Vec<Keyed>, Option<Memo>), String> {
    let get = |k: &str| Reflect::get(v, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED);
    let mut records = Vec::new();
    let rows: Array = get("records")
        .dyn_into()
        .map_err(|_| "unexpected IndexedDB contents")?;
    for row in rows.iter() {
        let row: Array = row.dyn_into().map_err(|_| "unexpected IndexedDB row")?;
        let key = row.get(0).as_f64().unwrap_or(0.0);
        let Some(text) = row.get(1).as_string() else {
            continue;
        };
        // A record this version cannot read is skipped, not fatal: the rest is restored.
        if let Ok(record) = from_json::<OutboxRecord>(&text) {
            if key.is_finite() && key >= 1.0 {
                records.push(Keyed {
                    key: key as u64,
                    record,
                });
            }
        }
    }
    let memo = get("memo")
        .as_string()
        .and_then(|t| from_json::<Memo>(&t).ok());
    Ok((records, memo))
}

/// Parse JSON text into `T` through a `serde_json::Value`: the engine's own parser and value
/// deserializer, instead of one more text deserializer per type in the browser module.
fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    serde_json::from_str::<serde_json::Value>(text).and_then(serde_json::from_value)
}
