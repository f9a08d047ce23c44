//! `cargo run --release -p braincache-bench -- [--quick] [--json FILE] [--plot DIR]`
//!
//! Runs the same workloads on braincache and on the peers a user would pick instead, in one run
//! on one machine, and prints workload, braincache, peer, ratio, goal and whether it is met.

mod bound;
mod codec;
mod distributed;
mod file;
mod floor;
mod future;
mod hitratio;
mod memory;
mod plot;
mod redb;
mod redis;
mod report;
mod stampede;
mod stats;

// The servers the distributed rows run against: the backend crates' own test helpers.
#[path = "../../braincache-memcached/tests/support/mod.rs"]
mod mc_support;
#[path = "../../braincache-redis/tests/support/cluster.rs"]
mod redis_cluster;
#[path = "../../braincache-redis/tests/support/mod.rs"]
mod support;

use clap::Parser;
use std::path::PathBuf;

/// The comparison harness.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Fewer operations and repetitions: a smoke run, not figures to publish.
    #[arg(long)]
    quick: bool,
    /// Also write the table as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run only workloads whose group name contains this (memory, hitratio, redb, bound, file,
    /// redis, purge, fsync, distributed: memcached and Redis Cluster, async, codec, stampede).
    #[arg(long)]
    only: Option<String>,
    /// Also write SVG charts to this folder: `ratios.svg` (every row against its peer, with its
    /// goal) and `hitratio-N.svg` (hit ratio against the bound, per trace, with Bélády's optimum).
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// Settings shared by the workloads.
pub struct Config {
    /// A smoke run.
    pub quick: bool,
    /// Repetitions per figure (the median is kept).
    pub reps: usize,
}

fn main() {
    if stampede::worker_main() {
        return;
    }
    let args = Args::parse();
    let cfg = Config {
        quick: args.quick,
        reps: if args.quick { 3 } else { 5 },
    };
    let wanted = |group: &str| args.only.as_deref().is_none_or(|o| group.contains(o));
    let mut rows = Vec::new();
    if wanted("memory") {
        memory::run(&cfg, &mut rows);
        memory::string_rows(&cfg, &mut rows);
    }
    if wanted("hitratio") {
        hitratio::run(&cfg, &mut rows);
    }
    if wanted("codec") {
        codec::run(&cfg, &mut rows);
    }
    if wanted("purge") {
        floor::purge(&cfg, &mut rows);
    }
    let fsync_floor = floor::fsync_us(&cfg);
    if wanted("fsync") {
        floor::run(&cfg, &mut rows, fsync_floor);
    }
    if wanted("redb") {
        redb::run(&cfg, &mut rows);
    }
    if wanted("bound") {
        bound::run(&cfg, &mut rows);
    }
    if wanted("file") {
        file::run(&cfg, &mut rows, fsync_floor);
    }
    if wanted("async") {
        future::run(&cfg, &mut rows);
    }
    if wanted("redis") {
        redis::run(&cfg, &mut rows);
    }
    if wanted("distributed") || wanted("memcached") || wanted("cluster") {
        distributed::run(&cfg, &mut rows);
    }
    if wanted("stampede") {
        stampede::run(&cfg, &mut rows);
    }
    report::print(&rows);
    if let Some(dir) = &args.plot {
        let drawn = std::fs::create_dir_all(dir)
            .map_err(|e| e.to_string())
            .and_then(|()| plot::ratios(dir, &rows).map_err(|e| e.to_string()))
            .and_then(|()| {
                let curves = if wanted("hitratio") {
                    hitratio::curves(&cfg)
                } else {
                    Vec::new()
                };
                plot::curves(dir, &curves).map_err(|e| e.to_string())
            });
        if let Err(e) = drawn {
            eprintln!("cannot draw the charts in {}: {e}", dir.display());
            std::process::exit(1);
        }
    }
    if let Some(path) = args.json {
        let json = serde_json::to_string_pretty(&rows).expect("rows serialize");
        if let Err(e) = std::fs::write(&path, json) {
            eprintln!("cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}
