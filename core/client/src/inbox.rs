//! Inboxes: the small queues between a client's tasks (application handles, connection tasks,
//! the driver, event subscribers), taken in batches and allocating nothing while empty.
//!
//! A tokio channel allocates a block of 32 slots when it is created, so every idle client paid
//! a few KiB per channel; an [`Inbox`] is a `VecDeque` behind a mutex that is empty (no heap)
//! until something is sent, and gives its storage back once drained after a burst. The
//! receiver takes everything queued under one lock ([`Inbox::poll_take`]), so a batch of
//! events costs one lock and at most one wake-up, not one per event.
//!
//! One receiver per inbox; any number of senders. Bounded inboxes make senders wait
//! ([`Inbox::send`]) while full: a slow driver slows a connection task's reads down instead
//! of buffering without limit.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::sync::Notify;

/// Capacity kept by a drained queue; more than this is given back to the allocator.
const KEEP_CAPACITY: usize = 16;

struct State<T> {
    items: VecDeque<T>,
    /// The receiver, when it waits.
    waker: Option<Waker>,
    /// The receiver is gone: sends fail.
    receiver_gone: bool,
    /// No sender will send again (see [`Inbox::close_senders`]).
    senders_gone: bool,
}

/// A multi-producer, single-consumer queue; see the module documentation.
pub(crate) struct Inbox<T> {
    state: Mutex<State<T>>,
    /// Senders waiting for room (bounded inboxes only).
    room: Notify,
    /// Most items queued before [`Inbox::send`] waits; `usize::MAX`: unbounded.
    capacity: usize,
}

/// What [`Inbox::poll_take`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Take {
    /// Items were moved into the caller's buffer.
    Items,
    /// Nothing queued, and no sender will send again.
    Ended,
}

impl<T> core::fmt::Debug for Inbox<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = self.lock();
        f.debug_struct("Inbox")
            .field("queued", &s.items.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<T> Inbox<T> {
    /// An inbox holding at most `capacity` items before senders wait (`usize::MAX`: never).
    pub(crate) fn new(capacity: usize) -> Inbox<T> {
        Inbox {
            state: Mutex::new(State {
                items: VecDeque::new(),
                waker: None,
                receiver_gone: false,
                senders_gone: false,
            }),
            room: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `item` whatever the capacity; `Err(item)` when the receiver is gone.
    pub(crate) fn send_now(&self, item: T) -> Result<(), T> {
        let waker = {
            let mut s = self.lock();
            if s.receiver_gone {
                return Err(item);
            }
            s.items.push_back(item);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Queue every item of `items` under one lock (unbounded); false when the receiver is gone.
    pub(crate) fn send_all(&self, items: Vec<T>) -> bool {
        let waker = {
            let mut s = self.lock();
            if s.receiver_gone {
                return false;
            }
            if s.items.is_empty() {
                s.items = VecDeque::from(items);
            } else {
                s.items.extend(items);
            }
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Queue `item`, waiting while the inbox is full; `Err(item)` when the receiver is gone.
    pub(crate) async fn send(&self, item: T) -> Result<(), T> {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut s = self.lock();
                if s.receiver_gone {
                    return Err(item);
                }
                if s.items.len() < self.capacity {
                    s.items.push_back(item);
                    let waker = s.waker.take();
                    drop(s);
                    if let Some(w) = waker {
                        w.wake();
                    }
                    return Ok(());
                }
            }
            room.await;
        }
    }

    /// Move every queued item into `out` (the receiver). `Pending` registers the receiver's
    /// waker; `Ready(Ended)` once nothing is queued and the senders are gone.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>, out: &mut VecDeque<T>) -> Poll<Take> {
        let was_full;
        {
            let mut s = self.lock();
            if s.items.is_empty() {
                if s.senders_gone {
                    return Poll::Ready(Take::Ended);
                }
                match &s.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => s.waker = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            was_full = s.items.len() >= self.capacity;
            if out.is_empty() {
                std::mem::swap(&mut s.items, out);
            } else {
                out.extend(s.items.drain(..));
            }
            if s.items.capacity() > KEEP_CAPACITY {
                s.items = VecDeque::new();
            }
        }
        if was_full {
            self.room.notify_waiters();
        }
        Poll::Ready(Take::Items)
    }

    /// Take what is queued now, without waiting (the receiver).
    pub(crate) fn take_now(&self, out: &mut VecDeque<T>) {
        let mut s = self.lock();
        out.extend(s.items.drain(..));
        if s.items.capacity() > KEEP_CAPACITY {
            s.items = VecDeque::new();
        }
        drop(s);
        self.room.notify_waiters();
    }

    /// The receiver is gone: later sends fail, waiting senders wake up and fail; what is
    /// queued is dropped.
    pub(crate) fn close_receiver(&self) {
        let items = {
            let mut s = self.lock();
            s.receiver_gone = true;
            s.waker = None;
            std::mem::take(&mut s.items)
        };
        drop(items);
        self.room.notify_waiters();
    }

    /// Whether the receiver is gone.
    pub(crate) fn receiver_gone(&self) -> bool {
        self.lock().receiver_gone
    }

    /// No sender will send again: once drained, the receiver sees [`Take::Ended`].
    pub(crate) fn close_senders(&self) {
        let waker = {
            let mut s = self.lock();
            s.senders_gone = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Give a drained buffer's storage back when a burst left it large.
pub(crate) fn trim<T>(buf: &mut VecDeque<T>) {
    if buf.is_empty() && buf.capacity() > KEEP_CAPACITY {
        *buf = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn batches_arrive_in_order_and_end_after_the_senders() {
        let inbox = Arc::new(Inbox::new(usize::MAX));
        for i in 0..5 {
            assert!(inbox.send_now(i).is_ok());
        }
        assert!(inbox.send_all(vec![5, 6]));
        let mut out = VecDeque::new();
        let took = poll_fn(|cx| inbox.poll_take(cx, &mut out)).await;
        assert_eq!(took, Take::Items);
        assert_eq!(out, (0..7).collect::<VecDeque<_>>());
        inbox.close_senders();
        out.clear();
        assert_eq!(
            poll_fn(|cx| inbox.poll_take(cx, &mut out)).await,
            Take::Ended
        );
    }

    #[tokio::test]
    async fn a_full_inbox_makes_the_sender_wait_for_room() {
        let inbox = Arc::new(Inbox::new(2));
        assert!(inbox.send(1).await.is_ok());
        assert!(inbox.send(2).await.is_ok());
        let sender = {
            let inbox = inbox.clone();
            tokio::spawn(async move { inbox.send(3).await.is_ok() })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!sender.is_finished(), "waits while full");
        let mut out = VecDeque::new();
        poll_fn(|cx| inbox.poll_take(cx, &mut out)).await;
        assert_eq!(out, VecDeque::from([1, 2]));
        assert!(sender.await.unwrap_or(false));
        out.clear();
        poll_fn(|cx| inbox.poll_take(cx, &mut out)).await;
        assert_eq!(out, VecDeque::from([3]));
    }

    #[tokio::test]
    async fn sends_fail_once_the_receiver_is_gone() {
        let inbox = Arc::new(Inbox::new(1));
        assert!(inbox.send(1).await.is_ok());
        let blocked = {
            let inbox = inbox.clone();
            tokio::spawn(async move { inbox.send(2).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        inbox.close_receiver();
        assert_eq!(blocked.await.ok(), Some(Err(2)));
        assert_eq!(inbox.send_now(3), Err(3));
        assert!(inbox.receiver_gone());
    }

    #[test]
    fn drained_storage_is_given_back() {
        let inbox = Inbox::new(usize::MAX);
        for i in 0..1000 {
            let _ = inbox.send_now(i);
        }
        let mut out = VecDeque::new();
        inbox.take_now(&mut out);
        assert_eq!(out.len(), 1000);
        assert!(inbox.lock().items.capacity() <= KEEP_CAPACITY);
        out.clear();
        trim(&mut out);
        assert_eq!(out.capacity(), 0);
    }
}
