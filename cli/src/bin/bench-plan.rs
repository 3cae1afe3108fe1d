//! `eks-intents plan` at fleet scale, against parsing alone: CPU time and peak memory of each,
//! every run in a process of its own (so each peak is its own), and the ratios to parsing.
//!
//! `cargo run --release -p eks-intents-cli --bin bench-plan [WORKLOADS] [RUNS]` (10,000
//! workloads in bundles of 100, 3 rounds of the three measures, taken in turn; each child's
//! output read through a pipe and counted, not kept). Two scenarios: an empty account (every
//! role created, documents shown whole) and an account where every role exists with an inline
//! policy that lacks one action (every policy shown as a diff). Linux only: the figures come from
//! `/proc/self/stat` (user + system time) and `/proc/self/status` (`VmHWM`).

#![forbid(unsafe_code)]

use eks_intents::process::{cpu_time, peak_rss_kib};
use serde_json::{Value, json};
use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

const PER_BUNDLE: usize = 100;
const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/eks-intents-boundary";
/// What a measured child prints last on stderr, before its figures.
const FIGURES: &str = "bench-plan figures:";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--measure") {
        return measure(&args[2..]);
    }
    let number = |i: usize, default: usize| -> Result<usize, String> {
        match args.get(i) {
            None => Ok(default),
            Some(a) => a
                .to_str()
                .and_then(|a| a.replace(['_', ','], "").parse().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{}: expected a positive number", a.to_string_lossy())),
        }
    };
    let (workloads, runs) = match (number(1, 10_000), number(2, 3)) {
        (Ok(w), Ok(r)) => (w, r),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("usage: bench-plan [WORKLOADS] [RUNS]: {e}");
            return ExitCode::from(2);
        }
    };
    match bench(workloads, runs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-plan: {e}");
            ExitCode::FAILURE
        }
    }
}

/// In the child: `parse` or `run` followed by an `eks-intents` command line; prints the figures
/// of this process on stderr once the command is done.
fn measure(args: &[OsString]) -> ExitCode {
    let (Some(what), rest) = (args.first(), args.get(1..).unwrap_or_default()) else {
        eprintln!("--measure parse|run COMMAND...");
        return ExitCode::from(2);
    };
    let code = if what == "parse" {
        match eks_intents_cli::read_plan_inputs(rest) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    } else {
        eks_intents_cli::main_with(rest)
    };
    match (cpu_time(), peak_rss_kib()) {
        (Some(cpu), Some(peak)) => eprintln!("{FIGURES} {} {peak}", cpu.as_millis()),
        _ => eprintln!("{FIGURES} unavailable (no /proc)"),
    }
    code
}

/// One run of a child: its CPU time in ms, its peak memory in KiB, the bytes it wrote.
struct Figures {
    cpu_ms: u64,
    peak_kib: u64,
    output: usize,
}

/// Runs one measure in a child and reads its output through a pipe, counting the bytes
/// without keeping them (the parent holds no copy of tens of megabytes while the child runs).
fn run_child(what: &str, command: &[OsString]) -> Result<Figures, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut child = Command::new(exe)
        .arg("--measure")
        .arg(what)
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start a child: {e}"))?;
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err("a child without its pipes".to_owned());
    };
    // The child's messages are read beside its output, so that neither pipe fills and blocks it.
    let messages = std::thread::spawn(move || {
        let mut text = Vec::new();
        stderr.read_to_end(&mut text).map(|_| text)
    });
    let mut output = 0;
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        match stdout.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => output += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot read a child's output: {e}")),
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for a child: {e}"))?;
    let stderr = match messages.join() {
        Ok(Ok(text)) => String::from_utf8_lossy(&text).into_owned(),
        _ => return Err(format!("cannot read the messages of child {what}")),
    };
    if !status.success() {
        return Err(format!("child {what} failed ({status}): {stderr}"));
    }
    let figures = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(FIGURES))
        .ok_or_else(|| format!("child {what} printed no figures: {stderr}"))?;
    let mut numbers = figures.split_whitespace().map(str::parse::<u64>);
    let (Some(Ok(cpu_ms)), Some(Ok(peak_kib))) = (numbers.next(), numbers.next()) else {
        return Err(format!("child {what}: {}", figures.trim()));
    };
    Ok(Figures {
        cpu_ms,
        peak_kib,
        output,
    })
}

fn bundle(index: usize, workloads: usize) -> String {
    let mut out = String::new();
    for w in 0..workloads {
        out.push_str(&format!(
            "apiVersion: k8s.otterize.com/v1alpha3\nkind: ClientIntents\nmetadata:\n  name: w{w}\n  namespace: team-{index:03}\nspec:\n  service:\n    name: worker-{w:03}\n  calls:\n    - name: arn:aws:dynamodb:$(AWS_REGION):$(AWS_ACCOUNT_ID):table/t-{index}-{w}\n      type: aws\n      awsActions: [dynamodb:GetItem, dynamodb:PutItem, dynamodb:Query]\n    - name: arn:aws:s3:::bucket-{index}/*\n      type: aws\n      awsActions: [s3:GetObject]\n---\n"
        ));
    }
    out
}

/// The cluster with every workload running as a ServiceAccount of its own, and no role yet.
fn empty_account(workloads: usize) -> Value {
    let names = (0..workloads).map(|i| (format!("team-{:03}", i / PER_BUNDLE), i % PER_BUNDLE));
    let (running, service_accounts): (Vec<Value>, Vec<Value>) = names
        .map(|(namespace, w)| {
            let name = format!("worker-{w:03}");
            (
                json!({"namespace": namespace, "name": name, "kind": "Deployment", "service_account": name}),
                json!({"namespace": namespace, "name": name}),
            )
        })
        .unzip();
    json!({
        "cluster": {
            "name": "demo",
            "account": "123456789012",
            "region": "eu-west-2",
            "oidc_issuer": "https://oidc.eks.eu-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
        },
        "now": 1_795_000_000,
        "workloads": running,
        "service_accounts": service_accounts,
    })
}

/// The state a plan leads to, with one action taken out of every inline policy: hand edits
/// that the next plan shows as one diff per role.
fn drifted(state: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(state).map_err(|e| format!("{}: {e}", state.display()))?;
    let mut state: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", state.display()))?;
    let roles = state
        .get_mut("roles")
        .and_then(Value::as_array_mut)
        .ok_or("the state holds no roles")?;
    for role in roles {
        let policies = role
            .get_mut("inline_policies")
            .and_then(Value::as_object_mut);
        for document in policies.into_iter().flat_map(|p| p.values_mut()) {
            let statements = document.get_mut("Statement").and_then(Value::as_array_mut);
            for statement in statements.into_iter().flatten() {
                if let Some(actions) = statement.get_mut("Action").and_then(Value::as_array_mut) {
                    actions.retain(|a| a != "dynamodb:Query");
                }
            }
        }
    }
    Ok(state)
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

fn plan_line(bundles: &Path, observed: &Path, extra: &[&str]) -> Vec<OsString> {
    let mut line: Vec<OsString> = vec![
        "eks-intents".into(),
        "plan".into(),
        bundles.into(),
        "--observed".into(),
        observed.into(),
        "--permissions-boundary".into(),
        BOUNDARY.into(),
    ];
    line.extend(extra.iter().map(OsString::from));
    line
}

fn bench(workloads: usize, runs: usize) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("eks-intents-bench-plan-{}", std::process::id()));
    let result = bench_in(&dir, workloads, runs);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn bench_in(dir: &Path, workloads: usize, runs: usize) -> Result<(), String> {
    let bundles = dir.join("bundles");
    std::fs::create_dir_all(&bundles)
        .map_err(|e| format!("{}: cannot create: {e}", bundles.display()))?;
    let mut yaml = 0;
    for index in 0..workloads.div_ceil(PER_BUNDLE) {
        let text = bundle(index, PER_BUNDLE.min(workloads - index * PER_BUNDLE));
        yaml += text.len();
        write(&bundles.join(format!("team-{index:03}.yaml")), text)?;
    }
    let empty = dir.join("empty.observed.json");
    write(&empty, empty_account(workloads).to_string())?;

    let state = dir.join("converged.observed.json");
    let mut line = plan_line(&bundles, &empty, &["--output", "json", "--write-state"]);
    line.push(state.clone().into());
    run_child("run", &line)?;
    let drift = dir.join("drifted.observed.json");
    write(&drift, drifted(&state)?.to_string())?;

    println!(
        "{workloads} workloads in {} bundles ({:.1} MiB of YAML); each figure the least of {runs} runs, each run a process of its own",
        workloads.div_ceil(PER_BUNDLE),
        yaml as f64 / 1024.0 / 1024.0
    );
    for (title, observed) in [
        ("empty account: every role created", &empty),
        ("every role exists, every inline policy drifted", &drift),
    ] {
        let size = std::fs::metadata(observed).map(|m| m.len()).unwrap_or(0);
        println!(
            "\n{title} (observed state {:.1} MiB)",
            size as f64 / 1024.0 / 1024.0
        );
        println!(
            "{:<14} {:>12} {:>14} {:>12} {:>10} {:>10}",
            "run", "CPU", "peak memory", "output", "CPU/parse", "mem/parse"
        );
        let measures = [
            ("parse alone", "parse", "text"),
            ("plan text", "run", "text"),
            ("plan JSON", "run", "json"),
        ];
        // Round after round, each measure once a round: a slow spell of the machine falls on
        // all of them alike, not on one.
        let mut bests: Vec<Option<Figures>> = measures.iter().map(|_| None).collect();
        for _ in 0..runs {
            for ((_, what, output), best) in measures.iter().zip(&mut bests) {
                let line = plan_line(&bundles, observed, &["--output", output]);
                let figures = run_child(what, &line)?;
                *best = Some(match best.take() {
                    Some(b) => Figures {
                        cpu_ms: b.cpu_ms.min(figures.cpu_ms),
                        peak_kib: b.peak_kib.min(figures.peak_kib),
                        output: figures.output,
                    },
                    None => figures,
                });
            }
        }
        let mut parse: Option<Figures> = None;
        for ((label, what, _), best) in measures.into_iter().zip(bests) {
            let Some(best) = best else { continue };
            let base = parse.as_ref().unwrap_or(&best);
            let ratio = |a: u64, b: u64| {
                if b == 0 {
                    "-".to_owned()
                } else {
                    format!("{:.2}", a as f64 / b as f64)
                }
            };
            let output = if what == "parse" {
                "-".to_owned()
            } else {
                format!("{:.1} MiB", best.output as f64 / 1024.0 / 1024.0)
            };
            println!(
                "{label:<14} {:>9} ms {:>10.1} MiB {output:>12} {:>10} {:>10}",
                best.cpu_ms,
                best.peak_kib as f64 / 1024.0,
                ratio(best.cpu_ms, base.cpu_ms),
                ratio(best.peak_kib, base.peak_kib),
            );
            if parse.is_none() {
                parse = Some(best);
            }
        }
    }
    Ok(())
}
