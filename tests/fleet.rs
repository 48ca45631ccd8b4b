//! Sharding across daemons: three daemons on one machine, `--shard 0/3`, `1/3`, `2/3`, run
//! every probe exactly once between them; `check --shard` shows the assignment, and going
//! from 3 to 4 shards moves about a quarter of the probes.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn config(listen: u16, probes: usize) -> String {
    let mut s = format!("[server]\nlisten = \"127.0.0.1:{listen}\"\n");
    for i in 0..probes {
        s.push_str(&format!(
            "\n[[probe]]\nname = \"p{i}\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\nevery = \"200ms\"\n"
        ));
    }
    s
}

#[tokio::test]
async fn every_probe_runs_exactly_once_across_three_shards() {
    let ports = [free_port(), free_port(), free_port()];
    let mut dirs = Vec::new();
    let mut daemons = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let dir = write_files(&[("sloprobe.toml", &config(*port, 12))]);
        daemons.push(Child(
            Command::new(bin())
                .args(["run", "--shard", &format!("{i}/3"), "-c"])
                .arg(dir.path().join("sloprobe.toml"))
                .env("SLOPROBE_LOG", "error")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ));
        dirs.push(dir);
    }
    // Scrape all three until every probe has run somewhere (bounded: 5 s).
    let mut seen: Vec<BTreeSet<String>> = Vec::new();
    for _ in 0..50 {
        seen.clear();
        for port in ports {
            let text = http_get(&format!("http://127.0.0.1:{port}/metrics"))
                .await
                .map(|r| r.1)
                .unwrap_or_default();
            seen.push(
                text.lines()
                    .filter(|l| l.starts_with("probe_runs_total{"))
                    .filter_map(|l| l.split("probe_name=\"").nth(1)?.split('"').next().map(str::to_string))
                    .collect(),
            );
        }
        if seen.iter().flatten().collect::<BTreeSet<_>>().len() == 12 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all: BTreeSet<String> = seen.iter().flatten().cloned().collect();
    assert_eq!(all.len(), 12, "{seen:?}");
    assert_eq!(
        seen.iter().map(BTreeSet::len).sum::<usize>(),
        12,
        "a probe ran on two shards: {seen:?}"
    );
    drop(daemons);
}

#[test]
fn check_shows_the_assignment_and_four_shards_move_a_quarter() {
    let dir = write_files(&[("sloprobe.toml", &config(free_port(), 200))]);
    let owned = |shard: &str| -> BTreeSet<String> {
        let out = Command::new(bin())
            .args(["check", "--shard", shard, "-c"])
            .arg(dir.path().join("sloprobe.toml"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix('[')?.split(']').next().map(str::to_string))
            .collect()
    };
    let three: Vec<BTreeSet<String>> = (0..3).map(|i| owned(&format!("{i}/3"))).collect();
    assert_eq!(three.iter().map(BTreeSet::len).sum::<usize>(), 200);
    let four: Vec<BTreeSet<String>> = (0..4).map(|i| owned(&format!("{i}/4"))).collect();
    assert_eq!(four.iter().map(BTreeSet::len).sum::<usize>(), 200);
    // Probes that kept their shard: the old shard's set minus what the new shard 3 took.
    let moved = four[3].len();
    assert!((30..=70).contains(&moved), "{moved} of 200 moved");
    for i in 0..3 {
        assert!(four[i].is_subset(&three[i]), "a probe moved between old shards");
    }
    let out = Command::new(bin())
        .args(["check", "--shard", "3/3", "-c"])
        .arg(dir.path().join("sloprobe.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}
