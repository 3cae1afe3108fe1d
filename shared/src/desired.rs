//! The desired state of a cluster: every bundle under `intents/<cluster>/`, parsed.
//!
//! A run fetches only the bundles that changed. The listing gives each bundle's ETag, and what
//! was parsed before is kept by (key, ETag) in two places:
//! - the memory of a warm function ([`Memory`]);
//! - the compiled desired state `state/<cluster>.json` ([`Compiled`]), left by every run that
//!   wrote something, so that a cold start reads one object instead of every bundle.
//!
//! The compiled state is read once per run: whole on a cold start, and with `If-None-Match` on a
//! warm one (nothing comes back unless another function instance wrote it since). The bundles to
//! fetch are fetched [`FETCH_CONCURRENCY`] at a time. The compiled state also remembers the
//! digest of the status report last written, so that a quiet run writes nothing.
//!
//! A parse is reused only by the same parser: the compiled state records the digest of the
//! core's sources (`build.rs`) and the limits it parsed with, and any other parser reads every
//! bundle again. A compiled state with a bundle that names a workload outside its key's
//! namespace is ignored whole: the namespace rule is the parser's, and the state object must not
//! be a way around it (only the reconciler may write `state/`, see `infra/template.yaml`).

use crate::intent::{self, BundleInput, BundleReport, Limits};
use crate::model::{AccountSummary, DesiredState};
use crate::ports::{BundleStore, ErrorKind, PortError, PortResult, WriteCondition};
use crate::status::BundleStatus;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bundles fetched at once when several changed.
pub const FETCH_CONCURRENCY: usize = 16;
/// The version of the compiled state's layout: another one is ignored (every bundle is read).
const FORMAT: u32 = 1;
/// The most of a compiled state read.
const MAX_COMPILED_BYTES: u64 = 64 * 1024 * 1024;
/// Tries at writing the compiled state while other runs keep writing theirs.
const WRITE_TRIES: usize = 3;
/// Clusters a warm function remembers; past it, the one used longest ago is forgotten (a
/// compiled state of 1,000 workloads is about a megabyte).
const REMEMBERED_CLUSTERS: usize = 32;

/// The desired state of a cluster and what each bundle gave.
#[derive(Clone, Debug, Default)]
pub struct DesiredLoad {
    pub desired: DesiredState,
    pub bundles: Vec<BundleStatus>,
    /// When the run began reading its desired state (milliseconds since the epoch): which of
    /// two runs saw the later state, so an older run never replaces a newer run's report.
    pub started_at_ms: u64,
    /// What this run's bundles parsed to, for the next run.
    pub compiled: Compiled,
    /// The compiled state found at the start of the run (`None`: none, or not usable), with
    /// the ETag it was read at.
    pub found: Option<Arc<Compiled>>,
    pub found_etag: Option<String>,
    /// How many bundles were fetched (the others were parsed before).
    pub fetched: usize,
}

impl DesiredLoad {
    /// The status report last written, as the compiled state found says.
    pub fn written_status(&self) -> Option<&WrittenStatus> {
        self.found.as_ref().and_then(|found| found.status.as_ref())
    }
}

/// What the last runs parsed: `state/<cluster>.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compiled {
    pub format: u32,
    /// The parser and limits the reports come from (see [`parser_id`]).
    pub parser: String,
    /// When the run that wrote it started: an older run never replaces a newer run's state.
    pub started_at_ms: u64,
    /// In key order.
    pub bundles: Vec<CompiledBundle>,
    /// The status report that run wrote or found current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<WrittenStatus>,
}

/// One bundle as parsed, at the ETag it was read at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompiledBundle {
    pub key: String,
    pub etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub report: BundleReport,
}

/// The status report a run wrote: the digest of its content
/// ([`crate::status::StatusReport::content_digest`]) and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenStatus {
    pub digest: String,
    pub at: u64,
}

/// The parser a report comes from: the core's sources and dependencies (digested by `build.rs`)
/// and the limits. Reports of another parser are not reused.
pub fn parser_id(limits: &Limits) -> String {
    let limits = serde_json::to_string(limits).unwrap_or_default();
    format!("{}/{limits}", env!("CORE_SOURCE_DIGEST"))
}

/// What a warm function keeps between runs, by cluster.
#[derive(Debug, Default)]
pub struct Memory {
    clusters: Mutex<HashMap<String, Remembered>>,
    /// By account: its IAM summary and when it was read (see `crate::quotas`). A deployment
    /// serves few accounts, so none is forgotten.
    accounts: Mutex<HashMap<String, (u64, AccountSummary)>>,
}

#[derive(Clone, Debug, Default)]
struct Remembered {
    compiled: Option<(Arc<Compiled>, Option<String>)>,
    last_quiet_run_at: Option<u64>,
    /// When it was last changed (a counter): the oldest is forgotten first.
    used: u64,
}

impl Memory {
    fn get(&self, cluster: &str) -> Remembered {
        self.clusters
            .lock()
            .map(|clusters| clusters.get(cluster).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    fn update(&self, cluster: &str, change: impl FnOnce(&mut Remembered)) {
        let Ok(mut clusters) = self.clusters.lock() else {
            return;
        };
        let used = clusters.values().map(|r| r.used).max().unwrap_or_default() + 1;
        let remembered = clusters.entry(cluster.to_owned()).or_default();
        change(remembered);
        remembered.used = used;
        if clusters.len() > REMEMBERED_CLUSTERS
            && let Some(oldest) = clusters
                .iter()
                .min_by_key(|(_, r)| r.used)
                .map(|(c, _)| c.clone())
        {
            clusters.remove(&oldest);
        }
    }

    /// Remembers a run of `cluster` that found nothing to write.
    pub fn note_quiet_run(&self, cluster: &str, at: u64) {
        self.update(cluster, |r| r.last_quiet_run_at = Some(at));
    }

    /// The IAM summary of `account` read at most `max_age` seconds before `now`.
    pub fn account_summary(&self, account: &str, now: u64, max_age: u64) -> Option<AccountSummary> {
        let accounts = self.accounts.lock().ok()?;
        let (read_at, summary) = accounts.get(account)?;
        (now.saturating_sub(*read_at) < max_age).then(|| summary.clone())
    }

    pub fn remember_account_summary(&self, account: &str, now: u64, summary: AccountSummary) {
        if let Ok(mut accounts) = self.accounts.lock() {
            accounts.insert(account.to_owned(), (now, summary));
        }
    }

    /// The last quiet run of `cluster` this function saw.
    pub fn last_quiet_run_at(&self, cluster: &str) -> Option<u64> {
        self.get(cluster).last_quiet_run_at
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// When the run that wrote a stored report or compiled state started (`started_at_ms`): 0 for
/// one of an older release, which any run replaces.
pub(crate) fn stored_run_start(bytes: &[u8]) -> u64 {
    #[derive(Deserialize)]
    struct StoredRun {
        #[serde(default)]
        started_at_ms: u64,
    }
    serde_json::from_slice::<StoredRun>(bytes)
        .map(|r| r.started_at_ms)
        .unwrap_or_default()
}

/// Which version of a bundle was read, both from the read itself: a listing made before may
/// name an older version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadVersion {
    pub version: Option<String>,
    pub etag: Option<String>,
}

/// Reads one bundle object into a report, with the version read (`None` when nothing was
/// read); a fetch that fails holds the whole bundle.
pub async fn read_object<S: BundleStore>(
    store: &S,
    key: &str,
    size: u64,
    limits: &Limits,
) -> (BundleReport, Option<ReadVersion>) {
    let location = intent::locate(key);
    let namespace = location.as_ref().and_then(|l| l.namespace.clone());
    let failed = |message: String| BundleReport::refused(key, message);
    if let Some(problem) = limits.bundle_too_large(size) {
        return (failed(problem.to_string()), None);
    }
    match store.get(key, limits.max_bundle_bytes as u64).await {
        // The get stops one byte past the cap, so its length is not the object's size: the
        // object was replaced by a larger one after it was listed.
        Ok(object) if object.bytes.len() > limits.max_bundle_bytes => (
            failed(format!(
                "bundle is more than the limit of {} bytes (it was replaced after it was \
                 listed at {size} bytes)",
                limits.max_bundle_bytes
            )),
            Some(ReadVersion {
                version: object.version,
                etag: object.etag,
            }),
        ),
        Ok(object) => (
            intent::read_bundle(
                &BundleInput {
                    key,
                    bytes: &object.bytes,
                    default_namespace: namespace.as_ref(),
                    tenant_namespace: namespace.as_ref(),
                },
                limits,
            ),
            Some(ReadVersion {
                version: object.version,
                etag: object.etag,
            }),
        ),
        Err(error) => (failed(format!("cannot read the bundle: {error}")), None),
    }
}

/// True when every workload a bundle's report names lies where its key allows: the cluster of
/// the key, and its namespace for a team bundle.
fn within_its_key(cluster: &str, bundle: &CompiledBundle) -> bool {
    let Some(location) = intent::locate(&bundle.key) else {
        return false;
    };
    let Some(namespace) = location.namespace else {
        return location.cluster == cluster && bundle.report.key == bundle.key;
    };
    location.cluster == cluster
        && bundle.report.key == bundle.key
        && bundle
            .report
            .intents
            .iter()
            .all(|i| i.workload.namespace == namespace)
        && bundle
            .report
            .held_workloads
            .iter()
            .all(|(ns, _)| *ns == namespace)
}

/// The compiled state of `cluster` and its ETag: from memory when the stored one has not
/// changed, else read; `None` when there is none or it cannot be used (the run then fetches
/// every bundle). Never fails the run: the compiled state only saves reads.
async fn find_compiled<S: BundleStore>(
    store: &S,
    cluster: &str,
    parser: &str,
    memory: &Memory,
) -> (Option<Arc<Compiled>>, Option<String>) {
    let key = intent::state_key(cluster);
    let remembered = memory.get(cluster).compiled;
    let read = match &remembered {
        Some((compiled, Some(etag))) => {
            match store.get_if_changed(&key, etag, MAX_COMPILED_BYTES).await {
                Ok(None) => return (Some(compiled.clone()), Some(etag.clone())),
                other => other,
            }
        }
        _ => store.get(&key, MAX_COMPILED_BYTES).await.map(Some),
    };
    let object = match read {
        Ok(Some(object)) => object,
        Ok(None) => return (None, None),
        Err(e) if e.kind == ErrorKind::NotFound => return (None, None),
        Err(e) => {
            tracing::warn!(cluster, error = %e, "cannot read the compiled desired state; every bundle is read");
            return (None, None);
        }
    };
    let compiled = match serde_json::from_slice::<Compiled>(&object.bytes) {
        Ok(compiled) => compiled,
        Err(e) => {
            tracing::warn!(cluster, error = %e, "the compiled desired state is not readable; every bundle is read");
            return (None, object.etag);
        }
    };
    if compiled.format != FORMAT || compiled.parser != parser {
        tracing::info!(
            cluster,
            "the compiled desired state comes from another release or other limits; every bundle is read"
        );
        return (None, object.etag);
    }
    if let Some(bundle) = compiled
        .bundles
        .iter()
        .find(|b| !within_its_key(cluster, b))
    {
        tracing::warn!(cluster, key = %bundle.key, "the compiled desired state names a workload its bundle's key does not allow; it is ignored and every bundle is read");
        return (None, object.etag);
    }
    (Some(Arc::new(compiled)), object.etag)
}

/// The union of every bundle under `intents/<cluster>/`, reading only the bundles whose ETag
/// is not the one parsed before.
pub async fn load<S: BundleStore>(
    store: &S,
    cluster: &str,
    limits: &Limits,
    memory: &Memory,
) -> Result<DesiredLoad, PortError> {
    let started_at_ms = now_ms();
    let parser = parser_id(limits);
    let mut objects = store.list(&intent::cluster_prefix(cluster)).await?;
    objects.retain(|o| intent::locate(&o.key).is_some_and(|l| l.cluster == cluster));
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    let (found, found_etag) = find_compiled(store, cluster, &parser, memory).await;
    let parsed: BTreeMap<(&str, &str), &CompiledBundle> = found
        .iter()
        .flat_map(|c| c.bundles.iter())
        .map(|b| ((b.key.as_str(), b.etag.as_str()), b))
        .collect();
    let known = |object: &crate::ports::BundleObject| {
        object
            .etag
            .as_deref()
            .and_then(|etag| parsed.get(&(object.key.as_str(), etag)).copied())
    };
    let to_fetch: Vec<_> = objects.iter().filter(|o| known(o).is_none()).collect();
    let fetched_count = to_fetch.len();
    let mut fetched: BTreeMap<String, (BundleReport, Option<ReadVersion>)> =
        futures_util::stream::iter(to_fetch)
            .map(|object| async move {
                let read = read_object(store, &object.key, object.size, limits).await;
                (object.key.clone(), read)
            })
            .buffer_unordered(FETCH_CONCURRENCY)
            .collect()
            .await;
    let mut load = DesiredLoad {
        started_at_ms,
        compiled: Compiled {
            format: FORMAT,
            parser,
            started_at_ms,
            bundles: Vec::with_capacity(objects.len()),
            status: None,
        },
        fetched: fetched_count,
        ..DesiredLoad::default()
    };
    for object in &objects {
        // Only what was parsed from a read is kept: a bundle refused before its read (too
        // large, or the read failed) is looked at again next time, which costs no fetch when
        // it is too large.
        let (report, etag, version, keep) = match known(object) {
            Some(bundle) => (
                bundle.report.clone(),
                Some(bundle.etag.clone()),
                bundle.version.clone(),
                true,
            ),
            None => {
                let Some((report, read)) = fetched.remove(&object.key) else {
                    continue;
                };
                // ETag and version of what was read, never mixed with the listing's: the
                // object may have been replaced in between.
                match read {
                    Some(read) => (report, read.etag, read.version, true),
                    None => (report, object.etag.clone(), object.version.clone(), false),
                }
            }
        };
        report.add_to(&mut load.desired);
        load.bundles.push(BundleStatus::of(
            &object.key,
            etag.clone(),
            version.clone(),
            &report,
        ));
        if let (Some(etag), true) = (etag, keep) {
            load.compiled.bundles.push(CompiledBundle {
                key: object.key.clone(),
                etag,
                version,
                report,
            });
        }
    }
    load.found = found;
    load.found_etag = found_etag;
    Ok(load)
}

/// Leaves what this run parsed, with the status report it wrote (or found current), for the
/// next run: in memory, and in `state/<cluster>.json` unless it is stored already. Returns
/// whether the compiled state was written. A failure only costs the next run its reads: it
/// is logged, never fails the run.
pub async fn keep<S: BundleStore>(
    store: &S,
    cluster: &str,
    memory: &Memory,
    load: &DesiredLoad,
    status: Option<WrittenStatus>,
) -> bool {
    let compiled = Compiled {
        status,
        ..load.compiled.clone()
    };
    if let Some(found) = &load.found
        && found.bundles == compiled.bundles
        && found.status == compiled.status
    {
        return false;
    }
    match write_compiled(store, cluster, &compiled, load.found_etag.clone()).await {
        Ok(Some(etag)) => {
            memory.update(cluster, |r| {
                r.compiled = Some((Arc::new(compiled), etag));
            });
            true
        }
        Ok(None) => {
            memory.update(cluster, |r| r.compiled = None);
            false
        }
        Err(e) => {
            tracing::warn!(cluster, error = %e, "cannot write the compiled desired state; the next run reads every bundle");
            memory.update(cluster, |r| r.compiled = None);
            false
        }
    }
}

/// Writes the compiled state unless a run that started later has written its own (`Ok(None)`
/// then); conditional on the ETag last read, looking again when another run wrote in between.
/// Gives the new object's ETag (`Some(None)` when the store does not tell it).
async fn write_compiled<S: BundleStore>(
    store: &S,
    cluster: &str,
    compiled: &Compiled,
    mut etag: Option<String>,
) -> PortResult<Option<Option<String>>> {
    let key = intent::state_key(cluster);
    let body = serde_json::to_vec(compiled).unwrap_or_default();
    for _ in 0..WRITE_TRIES {
        let condition = match &etag {
            Some(etag) => WriteCondition::Unchanged(etag.clone()),
            None => WriteCondition::Absent,
        };
        match store
            .put_if(&key, body.clone(), "application/json", &condition)
            .await
        {
            Ok(written) => return Ok(Some(written)),
            Err(e) if e.kind == ErrorKind::Conflict => {}
            Err(e) => return Err(e),
        }
        let stored = match store.get(&key, MAX_COMPILED_BYTES).await {
            Ok(stored) => stored,
            Err(e) if e.kind == ErrorKind::NotFound => {
                etag = None;
                continue;
            }
            Err(e) => return Err(e),
        };
        if stored_run_start(&stored.bytes) > compiled.started_at_ms {
            return Ok(None);
        }
        etag = stored.etag;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeStore;

    fn bundle(workload: &str) -> Vec<u8> {
        format!(
            "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata:\n  name: {workload}\nspec:\n  workload:\n    name: {workload}\n  targets:\n  - aws:\n      arn: \"arn:aws:dynamodb:eu-west-2:123456789012:table/jokes\"\n      actions: [\"dynamodb:GetItem\"]\n"
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn a_bundle_replaced_during_the_run_is_reported_as_the_version_read() {
        let store = FakeStore::default();
        let key = "intents/demo/jokes/worker.yaml";
        let listed = store.insert(key, bundle("old-worker"));
        store
            .replaced_before_read
            .lock()
            .unwrap()
            .insert(key.to_owned(), bundle("new-worker"));
        let load = load(&store, "demo", &Limits::default(), &Memory::default())
            .await
            .unwrap();
        let read = store.object(key).unwrap();
        assert_ne!(read.etag, listed.etag);
        let status = &load.bundles[0];
        assert_eq!(status.etag.as_deref(), Some(read.etag.as_str()));
        assert_eq!(status.version.as_deref(), Some(read.version.as_str()));
        let workloads: Vec<String> = load
            .desired
            .workloads
            .keys()
            .map(|w| w.name.to_string())
            .collect();
        assert_eq!(workloads, ["new-worker"]);
    }

    const A: &str = "intents/demo/jokes/a.yaml";
    const B: &str = "intents/demo/jokes/b.yaml";
    const STATE: &str = "state/demo.json";

    fn names(load: &DesiredLoad) -> Vec<String> {
        load.desired
            .workloads
            .keys()
            .map(|w| w.name.to_string())
            .collect()
    }

    /// Loads, then keeps what was loaded as a run that wrote the status would.
    async fn run(store: &FakeStore, memory: &Memory) -> DesiredLoad {
        let load = load(store, "demo", &Limits::default(), memory)
            .await
            .unwrap();
        keep(store, "demo", memory, &load, None).await;
        load
    }

    #[tokio::test]
    async fn a_warm_run_reads_only_the_bundles_whose_etag_changed() {
        let store = FakeStore::default();
        let memory = Memory::default();
        store.insert(A, bundle("a"));
        store.insert(B, bundle("b"));
        let first = run(&store, &memory).await;
        assert_eq!(names(&first), ["a", "b"]);
        assert_eq!(first.fetched, 2);
        let mut reads = store.take_reads();
        reads[1..].sort();
        assert_eq!(reads, [STATE, A, B]);

        // Nothing changed: one conditional read of the compiled state, answered "unchanged".
        let quiet = run(&store, &memory).await;
        assert_eq!(names(&quiet), ["a", "b"]);
        assert_eq!(quiet.fetched, 0);
        assert_eq!(quiet.bundles, first.bundles);
        assert_eq!(
            store.reads.lock().unwrap().clone(),
            [(STATE.to_owned(), true)]
        );
        store.take_reads();

        // One bundle replaced: it alone is read again, at its new ETag.
        let replaced = store.insert(B, bundle("b2"));
        let changed = run(&store, &memory).await;
        assert_eq!(names(&changed), ["a", "b2"]);
        assert_eq!(store.take_reads(), [STATE, B]);
        assert_eq!(
            changed.bundles[1].etag.as_deref(),
            Some(replaced.etag.as_str())
        );
    }

    #[tokio::test]
    async fn a_cold_start_reads_the_compiled_state_and_no_bundle() {
        let store = FakeStore::default();
        store.insert(A, bundle("a"));
        store.insert(B, bundle("b"));
        let warm = run(&store, &Memory::default()).await;
        store.take_reads();
        let cold = load(&store, "demo", &Limits::default(), &Memory::default())
            .await
            .unwrap();
        assert_eq!(store.take_reads(), [STATE]);
        assert_eq!(cold.fetched, 0);
        assert_eq!(cold.desired, warm.desired);
        assert_eq!(cold.bundles, warm.bundles);
        // A bundle deleted since is gone from the desired state without any read.
        store.objects.lock().unwrap().remove(A);
        let after = load(&store, "demo", &Limits::default(), &Memory::default())
            .await
            .unwrap();
        assert_eq!(names(&after), ["b"]);
        assert_eq!(store.take_reads(), [STATE]);
    }

    #[tokio::test]
    async fn another_parser_or_other_limits_read_every_bundle_again() {
        let store = FakeStore::default();
        store.insert(A, bundle("a"));
        run(&store, &Memory::default()).await;
        let limits = Limits {
            max_documents: 7,
            ..Limits::default()
        };
        store.take_reads();
        let other = load(&store, "demo", &limits, &Memory::default())
            .await
            .unwrap();
        assert_eq!(other.fetched, 1);
        assert_eq!(store.take_reads(), [STATE, A]);
        assert!(other.found.is_none());
        // So is a compiled state of another release.
        let mut stored: Compiled =
            serde_json::from_slice(&store.object(STATE).unwrap().bytes).unwrap();
        stored.parser = "another-release/{}".into();
        store.insert(STATE, serde_json::to_vec(&stored).unwrap());
        let other = load(&store, "demo", &Limits::default(), &Memory::default())
            .await
            .unwrap();
        assert_eq!(other.fetched, 1);
    }

    #[tokio::test]
    async fn a_compiled_state_that_grants_outside_a_bundles_namespace_is_ignored() {
        let store = FakeStore::default();
        store.insert(A, bundle("a"));
        run(&store, &Memory::default()).await;
        // Someone with write access to state/ moves the team's workload into kube-system.
        let mut stored: Compiled =
            serde_json::from_slice(&store.object(STATE).unwrap().bytes).unwrap();
        stored.bundles[0].report.intents[0].workload.namespace =
            crate::model::Namespace::new("kube-system");
        store.insert(STATE, serde_json::to_vec(&stored).unwrap());
        let forged = load(&store, "demo", &Limits::default(), &Memory::default())
            .await
            .unwrap();
        assert!(forged.found.is_none());
        assert_eq!(forged.fetched, 1);
        let namespaces: Vec<String> = forged
            .desired
            .workloads
            .keys()
            .map(|w| w.namespace.to_string())
            .collect();
        assert_eq!(namespaces, ["jokes"]);
    }

    #[tokio::test]
    async fn an_older_run_never_replaces_a_newer_runs_compiled_state() {
        let store = FakeStore::default();
        store.insert(A, bundle("a"));
        let memory = Memory::default();
        let older = load(&store, "demo", &Limits::default(), &memory)
            .await
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        store.insert(B, bundle("b"));
        let newer = load(&store, "demo", &Limits::default(), &Memory::default())
            .await
            .unwrap();
        assert!(keep(&store, "demo", &Memory::default(), &newer, None).await);
        // The older run's write finds the newer state and leaves it.
        assert!(!keep(&store, "demo", &memory, &older, None).await);
        let stored: Compiled = serde_json::from_slice(&store.object(STATE).unwrap().bytes).unwrap();
        assert_eq!(stored.bundles.len(), 2);
        assert_eq!(stored.started_at_ms, newer.started_at_ms);
    }

    #[tokio::test]
    async fn a_bundle_refused_before_its_read_is_not_kept() {
        let store = FakeStore::default();
        store.insert(A, bundle("a"));
        let small = Limits {
            max_bundle_bytes: 10,
            ..Limits::default()
        };
        let first = load(&store, "demo", &small, &Memory::default())
            .await
            .unwrap();
        assert!(!first.bundles[0].valid);
        assert!(first.compiled.bundles.is_empty());
    }

    #[test]
    fn a_warm_function_remembers_a_bounded_number_of_clusters() {
        let memory = Memory::default();
        for i in 0..=REMEMBERED_CLUSTERS {
            memory.note_quiet_run(&format!("cluster-{i}"), i as u64);
        }
        // The first is forgotten, the last ones are kept.
        assert_eq!(memory.last_quiet_run_at("cluster-0"), None);
        assert_eq!(memory.last_quiet_run_at("cluster-1"), Some(1));
        let last = format!("cluster-{REMEMBERED_CLUSTERS}");
        assert_eq!(
            memory.last_quiet_run_at(&last),
            Some(REMEMBERED_CLUSTERS as u64)
        );
        assert_eq!(memory.clusters.lock().unwrap().len(), REMEMBERED_CLUSTERS);
    }
}
