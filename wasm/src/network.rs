//! Connectivity from the browser: `online` / `offline` events of the global object feed `set_network` (NET-1, NET-2), and `navigator.connection`'s `change` event feeds `Changed` (NET-3) where the browser has it.

use crate::driver::{self, Input, Shared};
use crate::js;
use std::rc::Weak;
use tether_engine::Network;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::EventTarget;

/// One registered listener: where, for which event, and the callback.
type Listener = (EventTarget, &'static str, Closure<dyn FnMut()>);

/// The listeners of one client; dropping it removes them.
pub(crate) struct Watch {
    listeners: Vec<Listener>,
}

impl Watch {
    /// Start listening for `driver`.
    pub(crate) fn start(driver: Weak<Shared>) -> Watch {
        let mut w = Watch {
            listeners: Vec::new(),
        };
        if let Some(global) = js::global_target() {
            w.listen(&global, "online", &driver, Network::Online);
            w.listen(&global, "offline", &driver, Network::Offline);
        }
        if let Some(conn) = js::network_information() {
            w.listen(&conn, "change", &driver, Network::Changed);
        }
        w
    }

    fn listen(
        &mut self,
        target: &EventTarget,
        name: &'static str,
        driver: &Weak<Shared>,
        network: Network,
    ) {
        let d = driver.clone();
        let cb = Closure::<dyn FnMut()>::new(move || {
            if let Some(shared) = d.upgrade() {
                driver::feed(&shared, Input::Network(network));
            }
        });
        if target
            .add_event_listener_with_callback(name, cb.as_ref().unchecked_ref())
            .is_ok()
        {
            self.listeners.push((target.clone(), name, cb));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        for (target, name, cb) in self.listeners.drain(..) {
            let _ = target.remove_event_listener_with_callback(name, cb.as_ref().unchecked_ref());
        }
    }
}
