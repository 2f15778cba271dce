//! tether-fault-proxy: a scriptable TCP proxy that stands between a client and a server on
//! loopback and does to the bytes what real networks do.
//!
//! Tether's contract is about surviving networks: NAT gateways and cloud load balancers
//! that silently forget idle connections, throttled mobile links, long round trips. The
//! reference server can misbehave on purpose (its fault catalogue), but some failures live
//! *between* the two ends, below HTTP: a connection the server believes open while every
//! packet on it vanishes. This crate puts those failures on a real socket, so the native
//! client's tests (and, later, the conformance runner) exercise them end to end.
//!
//! ```no_run
//! use std::time::Duration;
//! use tether_fault_proxy::{Direction, FaultProxy, Script};
//!
//! # async fn demo(server: std::net::SocketAddr) -> std::io::Result<()> {
//! // Forward to the server; blackhole connections idle for 1.5 s, like a NAT gateway.
//! let proxy = FaultProxy::start(server, Script::new().idle_kill(Duration::from_millis(1500))).await?;
//! let endpoint = format!("http://{}/tether", proxy.addr());
//! // ... point a client at `endpoint` ...
//! // Later: a 32 KiB/s downlink from now on, for every open and new connection.
//! proxy.set_script(Script::new().seed(7).bandwidth(32 * 1024, Some(Direction::Down)));
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
//! - [`Fault`] is the catalogue: [`Fault::IdleKill`] (silence longer than T blackholes a
//!   connection: nothing passes either way any more, sockets stay open, no FIN, no RST),
//!   [`Fault::Bandwidth`] (bytes per second per direction, paced in 50 ms slices) and
//!   [`Fault::Latency`] (a fixed one-way delay plus seeded jitter). It is
//!   `#[non_exhaustive]` and grows by variants (reset or FIN after N bytes, a blackhole at
//!   a given time, answering WebSocket upgrades itself, stripping `Upgrade`, buffering a
//!   response until it ends), each read by the connection pump the same way.
//! - Random draws come from a generator per connection seeded from [`Script::seed`] and the
//!   connection's number, so a run replays exactly.
//! - [`Stats`] counts connections accepted, open and blackholed and bytes read each way, so
//!   a test can prove its fault actually fired.

mod pipe;
mod proxy;
mod script;

pub use proxy::{FaultProxy, Stats};
pub use script::{Direction, Fault, Script};
