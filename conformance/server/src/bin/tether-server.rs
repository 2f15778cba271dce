//! The `tether-server` binary: the reference server for the examples and manual testing.
//!
//! Its `--help` is `usage.txt`, next to this file (flags, and the `--faults` file format,
//! parsed by [`tether_server::fault_file::parse`]).

use serde_json::json;
use std::time::Duration;
use tether_engine::policy::PolicyWire;
use tether_server::{FaultRule, Server, ServerConfig};

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{}", include_str!("usage.txt"))]
    Help,
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Server(#[from] tether_server::ServerError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

struct Cli {
    config: ServerConfig,
    faults: Vec<FaultRule>,
    ticks: Vec<(String, u64)>,
    log_json: Option<String>,
}

fn usage(msg: impl Into<String>) -> CliError {
    CliError::Usage(msg.into())
}

fn parse_args(args: Vec<String>) -> Result<Cli, CliError> {
    let mut config = ServerConfig {
        listen: ([127, 0, 0, 1], 8787).into(),
        ..Default::default()
    };
    let mut faults = Vec::new();
    let mut ticks = Vec::new();
    let mut log_json = None;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(CliError::Help);
        }
        let mut val = || {
            it.next()
                .ok_or_else(|| usage(format!("{flag} needs a value")))
        };
        let ms = |v: String| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| usage(format!("bad milliseconds {v:?}")))
        };
        match flag.as_str() {
            "--listen" => {
                config.listen = val()?.parse().map_err(|_| usage("bad --listen address"))?
            }
            "--base-path" => config.base_path = val()?,
            "--server-id" => config.server_id = Some(val()?),
            "--heartbeat-ms" => config.heartbeat = ms(val()?)?,
            "--poll-hold-ms" => config.poll_hold = ms(val()?)?,
            "--ring-capacity" => {
                config.ring_capacity = val()?.parse().map_err(|_| usage("bad --ring-capacity"))?
            }
            "--ready-window-ms" => {
                let v = val()?;
                let (a, b) = v
                    .split_once(',')
                    .ok_or_else(|| usage("--ready-window-ms FROM,TO"))?;
                config.ready_window_ms = (
                    a.parse().map_err(|_| usage("bad FROM"))?,
                    b.parse().map_err(|_| usage("bad TO"))?,
                );
            }
            "--admission-per-sec" => {
                config.admission_per_sec = Some(
                    val()?
                        .parse()
                        .map_err(|_| usage("bad --admission-per-sec"))?,
                )
            }
            "--token" => config.tokens.get_or_insert_with(Vec::new).push(val()?),
            "--forbidden-token" => config.forbidden_tokens.push(val()?),
            "--policy" => {
                let p: PolicyWire = serde_json::from_str(&val()?)
                    .map_err(|e| usage(format!("bad --policy: {e}")))?;
                config.policy = Some(p);
            }
            "--faults" => {
                let path = val()?;
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| usage(format!("cannot read --faults file {path}: {e}")))?;
                faults = tether_server::fault_file::parse(&text)
                    .map_err(|e| usage(format!("bad --faults file {path}: {e}")))?;
            }
            "--tick" => {
                let v = val()?;
                let (c, m) = v
                    .rsplit_once(':')
                    .ok_or_else(|| usage("--tick CHANNEL:MS"))?;
                ticks.push((
                    c.to_owned(),
                    m.parse().map_err(|_| usage("bad --tick interval"))?,
                ));
            }
            "--log-json" => log_json = Some(val()?),
            other => return Err(usage(format!("unknown argument {other:?} (try --help)"))),
        }
    }
    Ok(Cli {
        config: config.announce_timings(),
        faults,
        ticks,
        log_json,
    })
}

async fn run() -> Result<(), CliError> {
    let cli = parse_args(std::env::args().skip(1).collect())?;
    let server = Server::start(cli.config).await?;
    server.set_faults(cli.faults);
    // Startup actions (e.g. `stop_listening`) are in force before the endpoint is announced.
    server.state().listener_settled().await;
    println!(
        "tether-server listening on {} (server_id {})",
        server.endpoint_url(),
        server.server_id()
    );
    for (channel, every) in cli.ticks {
        let st = server.state().clone();
        tokio::spawn(async move {
            let mut n: u64 = 0;
            let mut iv = tokio::time::interval(Duration::from_millis(every.max(1)));
            loop {
                iv.tick().await;
                n += 1;
                if st.publish(&channel, json!({ "tick": n })).await.is_err() {
                    return;
                }
            }
        });
    }
    tokio::signal::ctrl_c().await?;
    if let Some(path) = cli.log_json {
        let text = serde_json::to_string_pretty(&server.log().snapshot()).unwrap_or_default();
        std::fs::write(path, text)?;
    }
    server.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        if matches!(e, CliError::Help) {
            println!("{e}");
            return;
        }
        eprintln!("{e}");
        std::process::exit(match e {
            CliError::Usage(_) => 2,
            _ => 1,
        });
    }
}
