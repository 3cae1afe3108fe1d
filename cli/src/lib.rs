//! `eks-intents`: validate intent bundles and plan a cluster's IAM roles and bindings, locally,
//! with the same core the Lambda functions run. The commands live here, so that the benchmark
//! runs them as the binary does.

#![forbid(unsafe_code)]

mod bundles;
mod remote;
mod render;

use anyhow::{Context, Result, bail};
use bundles::PathArg;
use clap::{Parser, Subcommand, ValueEnum};
use eks_intents::intent::{BundleReport, Diagnostic, Intent, Limits, Place, Severity};
use eks_intents::model::{
    AccountId, BindingMode, ClusterInfo, ClusterName, ClusterRef, DesiredState, Namespace,
    ObservedState, PolicyArn, Region, Settings,
};
use eks_intents::plan::{plan, simulate};
use eks_intents::ports::PortError;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "eks-intents",
    version,
    about = "IAM roles for EKS workloads, from ClientIntents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check bundles before upload. Exit 0 when valid, 1 when not; errors as `file:line: ...`.
    Validate {
        /// Bundle files or directories; `NAMESPACE=PATH` gives that path's documents a
        /// default namespace of their own.
        #[arg(required = true)]
        paths: Vec<String>,
        /// Default namespace for documents that name none (as `kubectl apply -n`).
        #[arg(short, long)]
        namespace: Option<String>,
        /// The deployment's settings, as `EKS_INTENTS_*=value` lines (the reconciler's
        /// environment): validate then refuses exactly what that deployment refuses, with its
        /// exceptions. Without it, the defaults: every dangerous action is refused.
        #[arg(long)]
        settings: Option<PathBuf>,
        /// The cluster the bundles are for: exceptions scoped to a cluster apply only when it is
        /// given and matches.
        #[arg(long)]
        cluster: Option<String>,
        /// The cluster's partition (aws, aws-cn, aws-us-gov, ...): ARNs of another one are
        /// errors, as the reconciler refuses them. Not checked when left out.
        #[arg(long)]
        partition: Option<String>,
    },
    /// Show what a reconcile would do, without AWS: roles, trust, permissions and bindings.
    Plan(PlanArgs),
    /// Reconcile a cluster now, from this machine, with the environment's AWS configuration
    /// and the deployment's settings (EKS_INTENTS_* variables, see the README).
    Reconcile {
        #[arg(long)]
        cluster: String,
        /// Plan and write the status report, but change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The bucket holding intents/ and status/ (else EKS_INTENTS_BUCKET).
        #[arg(long)]
        bucket: Option<String>,
    },
    /// Print a cluster's status report (status/<cluster>.json) as a table.
    Status {
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        bucket: Option<String>,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(clap::Args)]
struct PlanArgs {
    /// Bundle files or directories; `NAMESPACE=PATH` gives that path's documents a default
    /// namespace of their own.
    #[arg(required = true)]
    paths: Vec<String>,
    #[arg(short, long)]
    namespace: Option<String>,
    /// The EKS cluster's name (taken from --observed when left out).
    #[arg(long)]
    cluster: Option<String>,
    /// The cluster's AWS account id.
    #[arg(long)]
    account: Option<String>,
    /// The cluster's region.
    #[arg(long)]
    region: Option<String>,
    /// The cluster's OIDC issuer URL (IRSA mode).
    #[arg(long)]
    oidc_issuer: Option<String>,
    #[arg(long, value_enum, default_value_t = Mode::Irsa)]
    mode: Mode,
    /// ARN of the permissions boundary put on every role.
    #[arg(long)]
    permissions_boundary: Option<String>,
    /// JSON snapshot of the observed state (format in the README); without it the account
    /// is empty and each workload runs as a ServiceAccount named after it.
    #[arg(long)]
    observed: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Write the observed state the plan leads to (same format as --observed).
    #[arg(long)]
    write_state: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Irsa,
    PodIdentity,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

/// Runs the command line `args` (the program's name first), as the `eks-intents` binary does.
/// Meant as the last thing a process does: `plan` leaves its large values unfreed for the exit.
pub fn main_with<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match run(Cli::parse_from(args)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", in_words(&error));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, each said once: a cause whose words the message already holds is
/// left out, and a port error's message already says its own causes in words.
fn in_words(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    let mut chain = error.chain();
    let mut current = chain.next();
    while let Some(cause) = current {
        if cause.downcast_ref::<PortError>().is_some() {
            break;
        }
        current = chain.next();
        if let Some(next) = current {
            let words = next.to_string();
            if !text.contains(&words) {
                text.push_str(": ");
                text.push_str(&words);
            }
        }
    }
    text
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Validate {
            paths,
            namespace,
            settings,
            cluster,
            partition,
        } => validate(
            &paths,
            namespace.as_deref(),
            &validate_settings(settings.as_deref())?,
            cluster.as_deref(),
            partition.as_deref(),
        ),
        Command::Plan(args) => plan_command(args),
        Command::Reconcile {
            cluster,
            dry_run,
            bucket,
        } => runtime()?.block_on(remote::reconcile(&cluster, dry_run, bucket)),
        Command::Status {
            cluster,
            bucket,
            output,
        } => runtime()?.block_on(remote::status(
            &cluster,
            bucket,
            matches!(output, Output::Json),
        )),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn parse_paths(paths: &[String]) -> Result<Vec<PathArg>> {
    paths.iter().map(|p| PathArg::parse(p)).collect()
}

fn parse_namespace(namespace: Option<&str>) -> Result<Option<Namespace>> {
    namespace
        .map(|ns| {
            eks_intents::intent::check_namespace(ns)
                .map_err(|e| anyhow::anyhow!("--namespace: {e}"))
        })
        .transpose()
}

/// The planner settings of `--settings FILE` (`KEY=value` lines, `#` comments, an optional
/// `export `), read by the same code as the deployment's environment; the defaults without it.
fn validate_settings(path: Option<&Path>) -> Result<Settings> {
    let Some(path) = path else {
        return Ok(Settings::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let mut values = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            bail!(
                "{}:{}: expected KEY=value, as in the deployment's environment",
                path.display(),
                i + 1
            );
        };
        let value = value.trim();
        let value = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .unwrap_or(value);
        values.insert(key.trim().to_owned(), value.to_owned());
    }
    eks_intents::config::plan_settings(|name| values.get(name).cloned())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Exit 0 when every bundle is valid and the deployment `settings` describe would grant every
/// intent; 1 otherwise. A dangerous action is refused here exactly as the reconciler refuses
/// it (same list, same exceptions), as an error with its location.
fn validate(
    paths: &[String],
    namespace: Option<&str>,
    settings: &Settings,
    cluster: Option<&str>,
    partition: Option<&str>,
) -> Result<ExitCode> {
    let namespace = parse_namespace(namespace)?;
    if let Some(partition) = partition
        && !eks_intents::policy::is_partition(partition)
    {
        bail!("--partition: {partition:?} is not an AWS partition (aws, aws-cn, aws-us-gov, ...)");
    }
    let reports = bundles::read_all(&parse_paths(paths)?, namespace.as_ref(), &Limits::default())?;
    let mut errors = bundles::print_diagnostics(&reports);
    // The partition is the cluster's, which the reader does not know: the planner checks it
    // in every reconcile, and here only when given.
    if let Some(partition) = partition {
        let intents = reports.iter().flat_map(|r| &r.intents);
        for intent in intents {
            let resources: std::collections::BTreeSet<&str> = intent
                .permissions
                .iter()
                .map(|p| p.resource.as_str())
                .collect();
            for resource in resources {
                if let Err(why) = eks_intents::policy::check_partition(resource, partition) {
                    let source = &intent.source;
                    let place = Place {
                        member: source.member.clone(),
                        document: Some(source.document),
                        ..Place::bundle(&source.bundle)
                    };
                    eprintln!(
                        "{}",
                        Diagnostic::new(Severity::Error, place, why.to_string())
                    );
                    errors += 1;
                }
            }
        }
    }
    let mut warnings = 0;
    for report in &reports {
        for intent in &report.intents {
            let refused = refusals(intent, settings, cluster);
            for (_, refusal) in &refused {
                eprintln!("{refusal}");
                errors += 1;
            }
            for refusal in system_refusals(intent, settings, partition) {
                eprintln!("{refusal}");
                errors += 1;
            }
            for warning in broad_grants(intent, &refused) {
                eprintln!("{warning}");
                warnings += 1;
            }
        }
    }
    let intents: usize = reports.iter().map(|r| r.intents.len()).sum();
    let skipped: usize = reports.iter().map(|r| r.notices.len()).sum();
    let valid = reports.iter().filter(|r| r.is_valid()).count();
    eprintln!(
        "{} bundle(s): {valid} valid, {} invalid; {intents} intent(s), {skipped} notice(s), {errors} error(s), {warnings} warning(s)",
        reports.len(),
        reports.len() - valid
    );
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The observed state: the snapshot file when given, else an empty account; cluster fields
/// given as flags override the snapshot's.
fn observed_state(args: &PlanArgs) -> Result<ObservedState> {
    let mut snapshot = match &args.observed {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            let value: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", path.display()))?;
            Some(value)
        }
        None => None,
    };
    let from_file = snapshot.as_ref().and_then(|s| s.get("cluster")).cloned();
    let field = |flag: &Option<String>, key: &str| -> Option<String> {
        flag.clone().or_else(|| {
            from_file
                .as_ref()
                .and_then(|c| c.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
    };
    let (Some(name), Some(account), Some(region)) = (
        field(&args.cluster, "name"),
        field(&args.account, "account"),
        field(&args.region, "region"),
    ) else {
        bail!(
            "--cluster, --account and --region are needed (or a cluster in the --observed snapshot)"
        );
    };
    let cluster = ClusterInfo {
        cluster: ClusterRef::new(
            ClusterName::new(name),
            AccountId::new(account),
            Region::new(region),
        ),
        oidc_issuer: field(&args.oidc_issuer, "oidc_issuer"),
    };
    match snapshot.take() {
        None => Ok(ObservedState::empty(cluster)),
        Some(mut value) => {
            if let Some(map) = value.as_object_mut() {
                map.insert("cluster".into(), serde_json::to_value(&cluster)?);
            }
            let path = args
                .observed
                .as_deref()
                .unwrap_or_else(|| std::path::Path::new("-"));
            serde_json::from_value(value)
                .with_context(|| format!("{}: not an observed-state snapshot", path.display()))
        }
    }
}

/// What `plan` reads before it plans: the bundles' reports (their diagnostics already printed,
/// their intents moved into the desired state), the desired state, the observed state and
/// the planner's settings.
struct PlanInputs {
    reports: Vec<BundleReport>,
    errors: usize,
    desired: DesiredState,
    observed: ObservedState,
    settings: Settings,
}

impl PlanInputs {
    fn read(args: &PlanArgs) -> Result<Self> {
        let namespace = parse_namespace(args.namespace.as_deref())?;
        let mut reports = bundles::read_all(
            &parse_paths(&args.paths)?,
            namespace.as_ref(),
            &Limits::default(),
        )?;
        let errors = bundles::print_diagnostics(&reports);
        let desired = bundles::desired_state(&mut reports);
        let observed = observed_state(args)?;
        let settings = Settings {
            mode: match args.mode {
                Mode::Irsa => BindingMode::Irsa,
                Mode::PodIdentity => BindingMode::PodIdentity,
            },
            permissions_boundary: args.permissions_boundary.clone().map(PolicyArn::new),
            // A local preview without a boundary still shows the roles, with a warning.
            require_boundary: args.permissions_boundary.is_some(),
            ..Settings::default()
        };
        Ok(PlanInputs {
            reports,
            errors,
            desired,
            observed,
            settings,
        })
    }
}

/// Reads what the `plan` command line `args` (the program's name first) names, as `plan` does,
/// and stops there: the cost of parsing alone, which the benchmark compares `plan` with.
/// Returns the number of workloads read.
pub fn read_plan_inputs<I, T>(args: I) -> Result<usize>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let Command::Plan(args) = Cli::try_parse_from(args)?.command else {
        bail!("not a plan command line");
    };
    let inputs = PlanInputs::read(&args)?;
    let workloads = inputs.desired.workloads.len();
    left_to_exit(inputs);
    Ok(workloads)
}

/// Leaves `value` for the end of the process to take back, instead of freeing its many small
/// allocations one by one (a tenth of `plan`'s time at fleet scale, for nothing): the commands
/// that call this are the last thing their process does.
fn left_to_exit<T>(value: T) {
    std::mem::forget(value);
}

/// The bundles' diagnostics that the `output` form shows: only JSON shows them again. The rest
/// of the reports (the intents of invalid bundles, where each permission was declared) is
/// freed before planning.
fn diagnostics_shown(
    output: Output,
    reports: Vec<BundleReport>,
) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    let (mut errors, mut notices) = (Vec::new(), Vec::new());
    if let Output::Json = output {
        for report in reports {
            errors.extend(report.errors);
            notices.extend(report.notices);
        }
    }
    (errors, notices)
}

fn plan_command(args: PlanArgs) -> Result<ExitCode> {
    let PlanInputs {
        reports,
        errors,
        desired,
        observed,
        settings,
    } = PlanInputs::read(&args)?;
    let (errors_found, notices) = diagnostics_shown(args.output, reports);
    let planned = plan(&desired, &observed, &settings);
    // Written as it is made, through one buffer of 64 KiB: a fleet's plan is tens of megabytes,
    // written in fewer, larger writes.
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    match args.output {
        Output::Text => render::text(&planned, &observed, &mut out),
        Output::Json => render::json(
            &render::JsonPlan {
                observed: &observed,
                mode: settings.mode,
                plan: &planned,
                errors: errors_found.iter().collect(),
                notices: notices.iter().collect(),
            },
            &mut out,
        ),
    }
    .and_then(|()| out.flush())
    .context("cannot write the plan")?;
    if let Some(path) = &args.write_state {
        let next = simulate(&observed, &planned.actions);
        std::fs::File::create(path)
            .map(BufWriter::new)
            .and_then(|mut file| {
                serde_json::to_writer_pretty(&mut file, &next)?;
                file.flush()
            })
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    left_to_exit((desired, observed, planned));
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The permissions of one intent that name the system's own resources (the settings' list,
/// the boundary, the IAM path), as errors with their location. The account is the cluster's,
/// unknown here: any account's roles under the path count.
fn system_refusals(intent: &Intent, settings: &Settings, partition: Option<&str>) -> Vec<String> {
    let system = eks_intents::policy::system_resources(settings, partition.unwrap_or("*"), "*");
    intent
        .permissions
        .iter()
        .enumerate()
        .filter_map(|(i, permission)| {
            let within = eks_intents::policy::names_system_resource(&permission.resource, &system)?;
            let message = eks_intents::words::system_refusal(permission, within);
            Some(
                intent
                    .diagnostic_at(i, Severity::Error, message)
                    .to_string(),
            )
        })
        .collect()
}

/// The grants on `*` of one intent that are not refused, as warnings with their location, in
/// the words of the planner's warning (the status shows the same). They do not fail validation.
fn broad_grants(intent: &Intent, refused: &[(usize, String)]) -> Vec<String> {
    intent
        .permissions
        .iter()
        .enumerate()
        .filter(|(i, p)| eks_intents::policy::broad(p) && !refused.iter().any(|(r, _)| r == i))
        .map(|(i, p)| {
            let message = format!(
                "{} is granted {}",
                intent.workload,
                eks_intents::policy::broad_warning(&[p.action.as_str()])
            );
            intent
                .diagnostic_at(i, Severity::Warning, message)
                .to_string()
        })
        .collect()
}

/// What the reconciler with `settings` would refuse of one intent, as errors with the intent's
/// location, by the index of the permission. The ServiceAccount a workload runs as is known
/// only on the cluster: a workload running as `default` is refused by `plan` with an observed
/// snapshot, not here.
fn refusals(intent: &Intent, settings: &Settings, cluster: Option<&str>) -> Vec<(usize, String)> {
    if !settings.refuse_dangerous {
        return Vec::new();
    }
    let workload = &intent.workload;
    intent
        .permissions
        .iter()
        .enumerate()
        .filter_map(|(i, permission)| {
            let why = eks_intents::policy::danger(permission)?;
            let excepted = settings.danger_exceptions.iter().any(|e| {
                e.allows(
                    &permission.action,
                    cluster,
                    workload.namespace.as_str(),
                    workload.name.as_str(),
                )
            });
            if excepted {
                return None;
            }
            let message = format!(
                "{} on {}: {why}; the deployment refuses it for {workload} unless its settings hold an exception (EKS_INTENTS_DANGEROUS_EXCEPTIONS; preview one with --settings)",
                permission.action,
                eks_intents::intent::echo(&permission.resource)
            );
            Some((
                i,
                intent
                    .diagnostic_at(i, Severity::Error, message)
                    .to_string(),
            ))
        })
        .collect()
}
