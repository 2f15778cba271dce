//! tether-fault-proxy: a scriptable TCP proxy that stands between a client and a server on
//! loopback and does to the bytes what real networks do.
//!
//! Tether's contract is about surviving networks: NAT gateways and cloud load balancers
//! that silently forget idle connections, cables pulled mid-frame, corporate proxies that
//! answer the WebSocket upgrade themselves, CDNs that hold a stream until it ends,
//! throttled mobile links, long round trips. The reference server can misbehave on purpose
//! (its fault catalogue), but these failures live *between* the two ends, below HTTP: a
//! connection the server believes open while every packet on it vanishes. This crate puts
//! them on a real socket, so the native client's tests and the conformance runner's
//! `network/...` suite (every client, through its adapter) exercise them end to end.
//!
//! ```no_run
//! use std::time::Duration;
//! use tether_fault_proxy::{Cut, Direction, FaultProxy, Script, Trigger};
//!
//! # async fn demo(server: std::net::SocketAddr) -> std::io::Result<()> {
//! // Forward to the server; blackhole connections idle for 1.5 s, like a NAT gateway.
//! let proxy = FaultProxy::start(server, Script::new().idle_kill(Duration::from_millis(1500))).await?;
//! let endpoint = format!("http://{}/tether", proxy.addr());
//! // ... point a client at `endpoint` ...
//! // Later: a 32 KiB/s downlink, and every connection reset somewhere in its first 5 kB.
//! proxy.set_script(
//!     Script::new()
//!         .seed(7)
//!         .bandwidth(32 * 1024, Some(Direction::Down))
//!         .reset(Trigger::after_bytes(1000, Direction::Down).jitter_bytes(4000)),
//! );
//! // A router reboot: every open connection reset at once.
//! proxy.cut_all(Cut::Reset);
//! assert_eq!(proxy.stats().blackholed, 0);
//! # Ok(()) }
//! ```
//!
//! The model:
//! - A [`FaultProxy`] listens on one port and forwards each accepted connection to one
//!   upstream address, byte for byte, in both [`Direction`]s.
//! - A [`Script`] is data (serde: `{"seed": 7, "faults": [{"fault": "idle_kill", "after_ms":
//!   1500}]}`), so a scenario file can carry it. It is live: [`FaultProxy::set_script`]
//!   applies to open connections too, which is how a test throttles a link in the middle of
//!   a run.
//! - [`Fault`] is the catalogue. On the bytes: [`Fault::IdleKill`] (silence longer than T
//!   blackholes a connection: nothing passes either way any more, sockets stay open, no
//!   FIN, no RST), [`Fault::Bandwidth`] (bytes per second per direction, paced in 50 ms
//!   slices), [`Fault::Latency`] (a fixed one-way delay plus seeded jitter), and the cuts
//!   [`Fault::Reset`], [`Fault::Fin`] and [`Fault::Blackhole`], each fired by a
//!   [`Trigger`]: at a time, or right after N bytes in one direction (in the middle of a
//!   frame, a chunk or a line). On HTTP/1.1, read only as far as needed:
//!   [`Fault::RefuseUpgrade`] (the proxy answers WebSocket upgrades itself, 403 or 400),
//!   [`Fault::StripUpgrade`] (forwards them without `Upgrade`/`Connection`) and
//!   [`Fault::Buffer`] (every response held until it ends: a buffering CDN). The enum is
//!   `#[non_exhaustive]` and grows by variants.
//! - [`FaultProxy::cut_all`] cuts every open connection at one instant ([`Cut`]).
//! - Random draws (jitter, byte counts, the `chance` a fault applies to a connection) come
//!   from generators per connection seeded from [`Script::seed`] and the connection's
//!   number, so a run replays exactly.
//! - [`Stats`] counts connections accepted, open, blackholed, reset, closed, refused, and
//!   bytes read each way, so a test can prove its fault actually fired; [`FaultProxy::events`]
//!   lists what happened in order ([`ProxyEvent`]: connections, request and response heads,
//!   faults fired, who closed first), which is how the conformance runner sees every
//!   connection attempt, including those the server never sees.
//! - When the upstream refuses (the server is down), the proxy reads the request for its
//!   log and resets the client: as close to "connection refused" as an accepted connection
//!   gets.

mod events;
mod http;
mod pipe;
mod proxy;
mod script;

pub use events::{EventKind, ProxyEvent};
pub use proxy::{FaultProxy, Stats};
pub use script::{Cut, Direction, Fault, Script, Trigger};
