//! `[artifacts]`: what a failed run leaves for an operator, on disk. Each failed run (an
//! error or a broken budget) gets a folder named `<UTC time>-<probe>-<run id>` (the run id
//! is its trace id, also in the failure log line, `once` JSON and the exemplar) holding
//! `run.json` and the run's evidence (a browser's screenshot, console and failed requests;
//! an HTTP response's head and first KiB of body). Bounded: at most `keep` folders and
//! `max_size` bytes in all, the oldest removed first; nothing else in the folder is touched.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{ConfigError, Size, Source, Spanned};
use crate::outcome::Outcome;

const DEFAULT_MAX_SIZE: u64 = 256 * 1024 * 1024;
const DEFAULT_KEEP: usize = 500;
/// The folders this module writes start with a UTC timestamp and contain this marker, so
/// the retention never removes anything else.
const MARK: &str = "-run-";

/// `[artifacts]` in the daemon file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactsConfig {
    /// The folder failed runs' artifacts go to (created if missing).
    pub dir: Spanned<String>,
    /// The most all kept artifacts may take (default "256MiB"; 1MiB to 100GiB).
    pub max_size: Option<Spanned<Size>>,
    /// The most failed runs kept (default 500; 1 to 100,000).
    pub keep: Option<Spanned<usize>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactSettings {
    pub dir: PathBuf,
    pub max_size: u64,
    pub keep: usize,
}

impl ArtifactsConfig {
    pub fn check(&self, source: &Source) -> Result<ArtifactSettings, ConfigError> {
        let base = source.path.parent().unwrap_or(Path::new("."));
        let dir = self.dir.get_ref();
        if dir.trim().is_empty() {
            return Err(source.error_at(self.dir.span(), Some("artifacts.dir"), "the folder is empty"));
        }
        let max_size = self.max_size.as_ref().map_or(DEFAULT_MAX_SIZE, |s| s.get_ref().0);
        if let Some(s) = &self.max_size
            && !(1024 * 1024..=100 * 1024 * 1024 * 1024).contains(&max_size)
        {
            return Err(source.error_at(s.span(), Some("artifacts.max_size"), "max_size is 1MiB to 100GiB"));
        }
        let keep = self.keep.as_ref().map_or(DEFAULT_KEEP, |k| *k.get_ref());
        if let Some(k) = &self.keep
            && !(1..=100_000).contains(&keep)
        {
            return Err(source.error_at(k.span(), Some("artifacts.keep"), "keep is 1 to 100,000 runs"));
        }
        Ok(ArtifactSettings {
            dir: base.join(dir),
            max_size,
            keep,
        })
    }
}

impl ArtifactSettings {
    /// `once --artifacts DIR`: the defaults, in `dir`.
    pub fn in_dir(dir: PathBuf) -> ArtifactSettings {
        ArtifactSettings {
            dir,
            max_size: DEFAULT_MAX_SIZE,
            keep: DEFAULT_KEEP,
        }
    }
}

/// The artifact folder with its retention. One writer at a time (a mutex): the totals it
/// keeps are what the caps are checked against.
pub struct Store {
    settings: ArtifactSettings,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    /// Oldest first: (folder, bytes).
    runs: VecDeque<(PathBuf, u64)>,
    total: u64,
}

impl Store {
    /// Opens (creating) the folder and counts what earlier runs left in it.
    pub fn open(settings: ArtifactSettings) -> std::io::Result<Store> {
        std::fs::create_dir_all(&settings.dir)?;
        let mut found: Vec<(String, PathBuf, u64)> = Vec::new();
        for entry in std::fs::read_dir(&settings.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.contains(MARK) || !entry.file_type()?.is_dir() {
                continue;
            }
            let size = folder_size(&entry.path());
            found.push((name, entry.path(), size));
        }
        found.sort();
        let mut kept = Kept::default();
        for (_, path, size) in found {
            kept.total += size;
            kept.runs.push_back((path, size));
        }
        let store = Store {
            settings,
            kept: Mutex::new(kept),
        };
        store.trim(&mut store.kept.lock().expect("artifacts lock"));
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.settings.dir
    }

    /// Writes a failed run's folder; a passed run leaves nothing. Returns the folder.
    pub fn write(&self, o: &Outcome, run_json: &serde_json::Value) -> std::io::Result<Option<PathBuf>> {
        if o.passed() {
            return Ok(None);
        }
        let mut files: Vec<(&str, Vec<u8>)> =
            vec![("run.json", serde_json::to_vec_pretty(run_json).unwrap_or_default())];
        for (name, bytes) in &o.evidence {
            files.push((name, bytes.to_vec()));
        }
        // A run whose files alone pass the cap keeps its small files only.
        let budget = self.settings.max_size;
        let mut size: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
        while size > budget {
            let Some(i) = files
                .iter()
                .enumerate()
                .skip(1)
                .max_by_key(|(_, f)| f.1.len())
                .map(|(i, _)| i)
            else {
                break;
            };
            size -= files[i].1.len() as u64;
            files.remove(i);
        }
        if size > budget {
            return Ok(None);
        }
        let stamp = chrono::DateTime::<chrono::Utc>::from(o.started_at).format("%Y%m%dT%H%M%S%.3fZ");
        let folder = self
            .settings
            .dir
            .join(format!("{stamp}{MARK}{}-{}", safe(&o.probe), o.run_id()));
        let mut kept = self.kept.lock().expect("artifacts lock");
        std::fs::create_dir_all(&folder)?;
        for (name, bytes) in &files {
            std::fs::write(folder.join(name), bytes)?;
        }
        kept.total += size;
        kept.runs.push_back((folder.clone(), size));
        self.trim(&mut kept);
        Ok(Some(folder))
    }

    /// Removes the oldest folders until both caps hold.
    fn trim(&self, kept: &mut Kept) {
        while kept.runs.len() > self.settings.keep || kept.total > self.settings.max_size {
            let Some((path, size)) = kept.runs.pop_front() else {
                break;
            };
            if let Err(e) = std::fs::remove_dir_all(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(error = %e, folder = %path.display(), "removing an old artifact folder");
            }
            kept.total = kept.total.saturating_sub(size);
        }
    }

    /// What is kept now: (folders, bytes).
    pub fn usage(&self) -> (usize, u64) {
        let kept = self.kept.lock().expect("artifacts lock");
        (kept.runs.len(), kept.total)
    }
}

/// The daemon's store, when `[artifacts]` is set (one per process: a reload that changes
/// it takes effect on restart).
static STORE: std::sync::OnceLock<std::sync::Arc<Store>> = std::sync::OnceLock::new();

/// Opens the daemon's store and turns on evidence capture in every run.
pub fn install(settings: ArtifactSettings) -> std::io::Result<()> {
    let store = Store::open(settings)?;
    let _ = STORE.set(std::sync::Arc::new(store));
    crate::outcome::capture_evidence(true);
    Ok(())
}

/// Keeps a failed run's artifacts in the daemon's store, off the async threads; `json`
/// renders the run as `once` does (its `run.json`).
pub fn keep(o: &Outcome, json: fn(&Outcome, u32) -> serde_json::Value) {
    let Some(store) = STORE.get() else { return };
    if o.passed() {
        return;
    }
    // Writes wait their turn on the store's lock; past MAX_PENDING queued (a disk slower
    // than failures come), a run's artifacts are skipped, so memory stays bounded.
    static PENDING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    const MAX_PENDING: usize = 32;
    /// Frees its queue slot when dropped, so a write that panics does not hold it forever.
    struct Slot;
    impl Drop for Slot {
        fn drop(&mut self) {
            PENDING.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let slot = Slot;
    if PENDING.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= MAX_PENDING {
        tracing::debug!(probe = %o.probe, "artifact writes behind: this run's skipped");
        return;
    }
    let (store, o) = (store.clone(), o.clone());
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let json = json(&o, 1);
        if let Err(e) = store.write(&o, &json) {
            tracing::warn!(error = %e, dir = %store.dir().display(), probe = %o.probe, "writing a failed run's artifacts");
        }
    });
}

/// A probe name as a file name part (probe names are `A-Z a-z 0-9 - _ .`; `/probe`'s
/// generated names may hold more).
fn safe(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn folder_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{ErrorType, ProbeError};

    fn failed(probe: &str, evidence_kib: usize) -> Outcome {
        let mut o = Outcome::measured(probe, "http", vec![("total", 0.1)]);
        o.error = Some(ProbeError::new(ErrorType::HttpStatus, "unexpected status 503"));
        o.evidence = vec![("response-body.txt", vec![b'x'; evidence_kib * 1024].into())];
        o
    }

    #[test]
    fn both_caps_hold_over_a_thousand_failures_and_passes_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let settings = ArtifactSettings {
            dir: dir.path().join("a"),
            max_size: 1024 * 1024,
            keep: 50,
        };
        let store = Store::open(settings.clone()).unwrap();
        // A file that is not ours is never removed.
        std::fs::write(dir.path().join("a/notes.txt"), "mine").unwrap();
        for i in 0..1000 {
            let o = failed(&format!("p{}", i % 7), 1 + i % 40);
            let written = store.write(&o, &serde_json::json!({"run": i})).unwrap();
            assert!(written.is_some());
            let (runs, bytes) = store.usage();
            assert!(runs <= 50 && bytes <= 1024 * 1024, "{runs} runs, {bytes} bytes");
        }
        let on_disk: Vec<_> = std::fs::read_dir(dir.path().join("a")).unwrap().collect();
        assert_eq!(on_disk.len(), store.usage().0 + 1);
        assert!(dir.path().join("a/notes.txt").exists());
        let passed = Outcome::measured("ok", "http", vec![("total", 0.1)]);
        assert!(store.write(&passed, &serde_json::json!({})).unwrap().is_none());
        // Reopened, it counts what is there and keeps the caps.
        let again = Store::open(ArtifactSettings { keep: 10, ..settings }).unwrap();
        assert_eq!(again.usage().0, 10);
    }

    #[test]
    fn a_run_too_big_for_the_cap_keeps_its_small_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(ArtifactSettings {
            dir: dir.path().to_path_buf(),
            max_size: 1024 * 1024,
            keep: 5,
        })
        .unwrap();
        let mut o = failed("big", 1);
        o.evidence.push(("screenshot.png", vec![0u8; 2 * 1024 * 1024].into()));
        let folder = store.write(&o, &serde_json::json!({})).unwrap().unwrap();
        assert!(folder.join("run.json").exists() && folder.join("response-body.txt").exists());
        assert!(!folder.join("screenshot.png").exists());
    }
}
