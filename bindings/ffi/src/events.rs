//! Event subscriptions and state watchers: what the foreign side pulls (see the crate docs for why pull).

use crate::types::{ClientEvent, State};
use futures_util::Stream;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// The events of one client from the moment it was created, in the order the client reported
/// them. Pull them with `next()`; one consumer per subscription (call `Client.events()` again
/// for another, independent one). Unbounded like the core client's stream: close or drop
/// subscriptions you no longer read.
#[derive(uniffi::Object)]
pub struct EventSubscription {
    inner: Mutex<Sub>,
}

struct Sub {
    /// `None` once closed or ended.
    stream: Option<tether::EventStream>,
    /// An event `ready()` took off the stream and `next`/`try_next` have not returned yet.
    ready: VecDeque<tether::ClientEvent>,
    /// The task waiting in `next()`/`ready()`, woken by `close()`.
    waker: Option<Waker>,
}

impl EventSubscription {
    pub(crate) fn new(stream: tether::EventStream) -> EventSubscription {
        EventSubscription {
            inner: Mutex::new(Sub {
                stream: Some(stream),
                ready: VecDeque::new(),
                waker: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Sub> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ready(true) when an event is waiting in `ready`, Ready(false) at the end.
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut sub = self.lock();
        if !sub.ready.is_empty() {
            return Poll::Ready(true);
        }
        let Some(stream) = sub.stream.as_mut() else {
            return Poll::Ready(false);
        };
        match Pin::new(stream).poll_next(cx) {
            Poll::Ready(Some(e)) => {
                sub.ready.push_back(e);
                Poll::Ready(true)
            }
            Poll::Ready(None) => {
                sub.stream = None;
                Poll::Ready(false)
            }
            Poll::Pending => {
                sub.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl EventSubscription {
    /// The next event; `None` once the subscription is closed or the client has ended.
    /// Cancel-safe: cancelling the call loses no event.
    pub async fn next(&self) -> Option<ClientEvent> {
        if std::future::poll_fn(|cx| self.poll_ready(cx)).await {
            self.try_next()
        } else {
            None
        }
    }

    /// Wait until `try_next()` has an event (`true`) or the subscription ended (`false`),
    /// taking nothing. With `try_next` it lets a single-threaded consumer take events only
    /// synchronously, e.g. to flush everything reported so far.
    pub async fn ready(&self) -> bool {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }
}

#[uniffi::export]
impl EventSubscription {
    /// An event already reported, if any; never waits.
    pub fn try_next(&self) -> Option<ClientEvent> {
        let mut sub = self.lock();
        if let Some(e) = sub.ready.pop_front() {
            return Some(e.into());
        }
        sub.stream
            .as_mut()
            .and_then(tether::EventStream::try_recv)
            .map(ClientEvent::from)
    }

    /// Stop this subscription: a pending `next()` returns `None`, later events are not kept.
    pub fn close(&self) {
        let waker = {
            let mut sub = self.lock();
            sub.stream = None;
            sub.ready.clear();
            sub.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// True once closed or ended (after the events it still held were taken).
    pub fn is_closed(&self) -> bool {
        let sub = self.lock();
        sub.stream.is_none() && sub.ready.is_empty()
    }
}

/// The client's current state and its changes (conflated: a slow reader sees the latest
/// state, as Kotlin's `StateFlow` does). For every transition in order, read `StateChanged`
/// events instead.
#[derive(uniffi::Object)]
pub struct StateWatcher {
    rx: tokio::sync::Mutex<tokio::sync::watch::Receiver<tether::State>>,
    now: tokio::sync::watch::Receiver<tether::State>,
}

impl StateWatcher {
    pub(crate) fn new(rx: tokio::sync::watch::Receiver<tether::State>) -> StateWatcher {
        StateWatcher {
            now: rx.clone(),
            rx: tokio::sync::Mutex::new(rx),
        }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl StateWatcher {
    /// The state after the next change not yet seen by this watcher; `None` once the client
    /// has ended.
    pub async fn changed(&self) -> Option<State> {
        let mut rx = self.rx.lock().await;
        rx.changed().await.ok()?;
        let s = State::from(&*rx.borrow_and_update());
        Some(s)
    }
}

#[uniffi::export]
impl StateWatcher {
    /// The current state (STATE-3).
    pub fn current(&self) -> State {
        State::from(&*self.now.borrow())
    }
}
