//! tether-conformance: `run` (the main job), `list`, `matrix` and `storm`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tether_conformance::adapter::AdapterCmd;
use tether_conformance::cli::{self, Cli, RunArgs};
use tether_conformance::report;
use tether_conformance::scenario::{self, Case};
use tether_conformance::spec::Spec;
use tether_conformance::suite::{self, RunOptions};
use tether_conformance::{
    checks, glob, matrix, native, outcome, preflight, protocol, source, storm,
};

/// Run `fut` on a fresh multi-threaded runtime; `done` shows its result, an error is printed
/// after `what` and fails the process.
fn on_runtime<T, E: std::fmt::Display>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
    done: impl FnOnce(T),
) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(fut) {
        Ok(v) => {
            done(v);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A multi-threaded tokio runtime, or the exit code after saying why there is none.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: tokio runtime: {e}");
            ExitCode::FAILURE
        })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            let usage = if args.first().is_some_and(|a| a == "storm") {
                cli::STORM_USAGE
            } else {
                cli::USAGE
            };
            eprintln!("error: {e}\n\n{usage}");
            return ExitCode::from(2);
        }
    };
    match cli {
        Cli::Help => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Cli::Adapter(a) => match native::parse_args(&a).map_err(|e| e.to_string()) {
            Ok(brk) => match native::run_stdio(brk) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("adapter: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("adapter: {e}");
                ExitCode::from(2)
            }
        },
        Cli::StormHelp => {
            print!("{}", cli::STORM_USAGE);
            ExitCode::SUCCESS
        }
        Cli::Server(a) => {
            ExitCode::from(u8::try_from(tether_server::cli::main_with_args(a)).unwrap_or(1))
        }
        Cli::Bench(o) => on_runtime("server-bench", tether_conformance::bench::run(&o), |r| {
            print!("{r}")
        }),
        Cli::StormBench(o) => on_runtime(
            "storm-bench",
            tether_conformance::storm_bench::run(&o),
            |r| print!("{r}"),
        ),
        Cli::StormServer(a) => on_runtime(
            "__storm-server",
            tether_conformance::storm_bench::serve(&a),
            |()| {},
        ),
        Cli::Storm(p) => {
            let r = storm::simulate(&p);
            print!("{}", storm::render(&p, &r));
            ExitCode::SUCCESS
        }
        Cli::List(r) => list(&r),
        Cli::Run(r) => run(r),
        Cli::Matrix(m) => run_matrix(m),
    }
}

fn load(r: &RunArgs) -> Result<Vec<Case>, String> {
    let cases = scenario::load(r.scenarios.as_deref()).map_err(|e| e.to_string())?;
    let spec = Spec::embedded();
    for c in &cases {
        if let Some(id) = c.covers.iter().find(|id| spec.get(id).is_none()) {
            return Err(format!("case {}: covers unknown requirement {id}", c.name));
        }
        if let Some(cap) = c
            .requires
            .iter()
            .find(|cap| !protocol::CAPABILITIES.contains(&cap.as_str()))
        {
            return Err(format!(
                "case {}: requires unknown capability {cap}",
                c.name
            ));
        }
        for ch in &c.checks {
            if !checks::NAMES.contains(&ch.check.as_str()) {
                return Err(format!("case {}: unknown check {}", c.name, ch.check));
            }
            for key in ["when", "unless"] {
                if let Some(cap) = ch.params.get(key) {
                    if !cap
                        .as_str()
                        .is_some_and(|s| protocol::CAPABILITIES.contains(&s))
                    {
                        return Err(format!(
                            "case {}: check {} has {key} {cap}, not a capability",
                            c.name, ch.check
                        ));
                    }
                }
            }
        }
        let mut caps = Vec::new();
        step_capabilities(&c.steps, &mut caps);
        if let Some(cap) = caps
            .iter()
            .find(|cap| !protocol::CAPABILITIES.contains(&cap.as_str()))
        {
            return Err(format!(
                "case {}: `if` names unknown capability {cap}",
                c.name
            ));
        }
    }
    Ok(cases
        .into_iter()
        .filter(|c| glob::selected(&c.name, &r.include, &r.exclude))
        .map(|mut c| {
            if let Some(seed) = r.seed {
                c.seed = seed;
            }
            c
        })
        .collect())
}

/// The capabilities `if` steps name, nested ones included.
fn step_capabilities(steps: &[scenario::Step], out: &mut Vec<String>) {
    for s in steps {
        match s {
            scenario::Step::If {
                capability,
                then,
                otherwise,
            } => {
                out.push(capability.clone());
                step_capabilities(then, out);
                step_capabilities(otherwise, out);
            }
            scenario::Step::Repeat { steps, .. } => step_capabilities(steps, out),
            _ => {}
        }
    }
}

fn list(r: &RunArgs) -> ExitCode {
    let spec = Spec::embedded();
    match load(r) {
        Ok(cases) => {
            for c in &cases {
                let level = outcome::case_level(&spec, &c.covers);
                println!(
                    "{:<50} {:<9} {:<24} {}",
                    c.name,
                    level.as_str(),
                    c.covers.join(" "),
                    if c.requires.is_empty() {
                        String::new()
                    } else {
                        format!("requires {}", c.requires.join(","))
                    }
                );
            }
            println!("{} cases", cases.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The repository's conformance directory (compile-time), if it still exists.
fn conformance_dir() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    p.join("scenarios")
        .is_dir()
        .then(|| p.canonicalize().unwrap_or(p))
}

/// The default adapter: the native adapter built into this binary (`<this exe> __adapter-native`),
/// so it is always the client code this runner was built from. (`cargo run` rebuilds only
/// this binary: a `tether-adapter-native` lying next to it may be older, and is used only
/// when named with `--adapter`.)
fn native_adapter() -> Result<AdapterCmd, String> {
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    Ok(AdapterCmd {
        program: me,
        args: vec!["__adapter-native".into()],
    })
}

fn run(r: RunArgs) -> ExitCode {
    if let Some(bin) = &r.server_bin {
        tether_conformance::exec::set_server_bin(bin.clone());
    }
    let spec = Spec::embedded();
    let cases = match load(&r) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if cases.is_empty() {
        eprintln!("error: no case selected");
        return ExitCode::from(2);
    }
    let default_adapter = r.adapter.is_none();
    let adapter = match &r.adapter {
        Some(line) => match AdapterCmd::parse(line) {
            Some(a) => a,
            None => {
                eprintln!("error: empty --adapter");
                return ExitCode::from(2);
            }
        },
        None => match native_adapter() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let known_path = r.known_failures.clone().or_else(|| {
        default_adapter
            .then(|| conformance_dir().map(|d| d.join("known-failures/native.txt")))
            .flatten()
            .filter(|p| p.is_file())
    });
    let known_failures = match &known_path {
        Some(p) => match outcome::load_known_failures(p) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => Default::default(),
    };
    let opts = RunOptions {
        adapter,
        jobs: r.jobs.unwrap_or(4),
        known_failures,
        progress: true,
    };
    eprintln!(
        "tether-conformance: {} cases, adapter `{}`, {} jobs{}",
        cases.len(),
        opts.adapter.display(),
        opts.jobs,
        known_path
            .as_ref()
            .map(|p| format!(", known failures {}", p.display()))
            .unwrap_or_default()
    );
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let rep = rt.block_on(async {
        if !default_adapter {
            // The adapter may build itself on its first start: wait for it once, up front.
            preflight::check(&opts.adapter, preflight::DEFAULT_TIMEOUT).await?;
        }
        Ok::<_, String>(suite::run(&spec, cases, &opts).await)
    });
    let mut rep = match rep {
        Ok(rep) => rep,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    rep.source = conformance_dir().and_then(|d| source::git(&d));
    print!("{}", report::terminal::render(&rep, r.verbose));
    if !r.no_reports {
        let out = r
            .out
            .clone()
            .or_else(|| conformance_dir().map(|d| d.join("reports/out")))
            .unwrap_or_else(|| PathBuf::from("conformance-reports"));
        let path =
            |given: &Option<PathBuf>, name: &str| given.clone().unwrap_or_else(|| out.join(name));
        let writes: [(PathBuf, Result<String, String>); 3] = [
            (
                path(&r.json, "report.json"),
                report::json::render(&rep).map_err(|e| e.to_string()),
            ),
            (
                path(&r.junit, "report.xml"),
                Ok(report::junit::render(&rep)),
            ),
            (path(&r.html, "report.html"), Ok(report::html::render(&rep))),
        ];
        for (p, body) in writes {
            let res = body.and_then(|b| {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
                }
                std::fs::write(&p, b).map_err(|e| e.to_string())
            });
            match res {
                Ok(()) => println!("wrote {}", p.display()),
                Err(e) => eprintln!("could not write {}: {e}", p.display()),
            }
        }
    }
    if rep.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `matrix`: every available client of the registry, one after the other, one JSON and one HTML page.
fn run_matrix(m: matrix::MatrixArgs) -> ExitCode {
    let Some(conformance) = conformance_dir() else {
        eprintln!("error: matrix runs from a checkout (conformance/ not found)");
        return ExitCode::from(2);
    };
    let root = conformance
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| conformance.clone());
    let registry_path = m
        .registry
        .clone()
        .unwrap_or_else(|| conformance.join("adapters/clients.json"));
    let registry = match matrix::registry::Registry::load(&registry_path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let selection = RunArgs {
        scenarios: m.scenarios.clone(),
        include: m.include.clone(),
        exclude: m.exclude.clone(),
        ..RunArgs::default()
    };
    let cases = match load(&selection) {
        Ok(c) if c.is_empty() => {
            eprintln!("error: no case selected");
            return ExitCode::from(2);
        }
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let native = match native_adapter() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Report paths given on the command line are relative to where it was typed...
    let cwd = std::env::current_dir().unwrap_or_else(|_| root.clone());
    let abs = |p: &Option<PathBuf>| p.as_ref().map(|p| cwd.join(p));
    let (out, json, html) = (abs(&m.out), abs(&m.json), abs(&m.html));
    // ...and adapter commands in the registry to the repository root.
    if let Err(e) = std::env::set_current_dir(&root) {
        eprintln!("error: cd {}: {e}", root.display());
        return ExitCode::from(2);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let spec = Spec::embedded();
    let source = source::git(&conformance);
    let ctx = matrix::Context {
        root,
        native,
        source,
    };
    let rep = rt.block_on(matrix::run(&spec, cases, &registry, &ctx, &m));
    print!("{}", matrix::render_terminal(&rep));
    let out = out.unwrap_or_else(|| conformance.join("reports/out"));
    let writes: [(PathBuf, Result<String, String>); 2] = [
        (
            json.unwrap_or_else(|| out.join("matrix.json")),
            matrix::render_json(&rep).map_err(|e| e.to_string()),
        ),
        (
            html.unwrap_or_else(|| out.join("matrix.html")),
            Ok(matrix::html::render(&rep)),
        ),
    ];
    for (p, body) in writes {
        let res = body.and_then(|b| {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            }
            std::fs::write(&p, b).map_err(|e| e.to_string())
        });
        match res {
            Ok(()) => println!("wrote {}", p.display()),
            Err(e) => eprintln!("could not write {}: {e}", p.display()),
        }
    }
    if rep.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
