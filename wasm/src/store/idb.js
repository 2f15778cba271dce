// IndexedDB plumbing of tether-wasm's browser store (see store/idb.rs): requests and
// transactions as promises. No decisions here: the Rust mirror decides what to write.

function failed(what, error) {
  const message = `${what}: ${error && error.name ? `${error.name}: ${error.message}` : "aborted"}`;
  return { code: "store_failed", message };
}

function done(tx, what) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(failed(what, tx.error));
    tx.onerror = (ev) => ev.preventDefault();
  });
}

export function idb_open(factory, name) {
  return new Promise((resolve, reject) => {
    let req;
    try {
      req = factory.open(name, 1);
    } catch (e) {
      reject(failed("open", e));
      return;
    }
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains("outbox")) db.createObjectStore("outbox");
      if (!db.objectStoreNames.contains("memo")) db.createObjectStore("memo");
    };
    req.onsuccess = () => {
      const db = req.result;
      // Another tab upgrading the database: let it, this connection closes.
      db.onversionchange = () => db.close();
      resolve(db);
    };
    req.onerror = () => reject(failed("open", req.error));
    req.onblocked = () => reject(failed("open", { name: "Blocked", message: "another tab holds an older version" }));
  });
}

export function idb_load(db) {
  return new Promise((resolve, reject) => {
    let tx;
    try {
      tx = db.transaction(["outbox", "memo"], "readonly");
    } catch (e) {
      reject(failed("load", e));
      return;
    }
    const out = { records: [], memo: undefined };
    const cursor = tx.objectStore("outbox").openCursor();
    cursor.onsuccess = () => {
      const c = cursor.result;
      if (c) {
        out.records.push([c.key, c.value]);
        c.continue();
      }
    };
    const memo = tx.objectStore("memo").get("memo");
    memo.onsuccess = () => {
      out.memo = memo.result;
    };
    done(tx, "load").then(() => resolve(out), reject);
  });
}

function write(db, store, what, strict, op) {
  let tx;
  try {
    tx = db.transaction(store, "readwrite", { durability: strict ? "strict" : "default" });
    op(tx.objectStore(store));
  } catch (e) {
    return Promise.reject(failed(what, e));
  }
  return done(tx, what);
}

export function idb_put(db, key, value, strict) {
  return write(db, "outbox", "append", strict, (s) => s.put(value, key));
}

export function idb_delete(db, key) {
  return write(db, "outbox", "remove", false, (s) => s.delete(key));
}

export function idb_memo(db, value) {
  return write(db, "memo", "memo", false, (s) => s.put(value, "memo"));
}
