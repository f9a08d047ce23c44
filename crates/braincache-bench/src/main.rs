//! `cargo run --release -p braincache-bench -- [--quick] [--json FILE]`
//!
//! Runs the same workloads on braincache and on the peers a user would pick instead, in one run
//! on one machine, and prints workload, braincache, peer, ratio, goal and whether it is met.

mod codec;
mod file;
mod floor;
mod memory;
mod redb;
mod redis;
mod report;
mod stats;

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
    /// Run only workloads whose group name contains this (memory, redb, file, redis, purge, fsync,
    /// codec).
    #[arg(long)]
    only: Option<String>,
}

/// Settings shared by the workloads.
pub struct Config {
    /// A smoke run.
    pub quick: bool,
    /// Repetitions per figure (the median is kept).
    pub reps: usize,
}

fn main() {
    let args = Args::parse();
    let cfg = Config {
        quick: args.quick,
        reps: if args.quick { 3 } else { 5 },
    };
    let wanted = |group: &str| args.only.as_deref().is_none_or(|o| group.contains(o));
    let mut rows = Vec::new();
    if wanted("memory") {
        memory::run(&cfg, &mut rows);
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
    if wanted("file") {
        file::run(&cfg, &mut rows, fsync_floor);
    }
    if wanted("redis") {
        redis::run(&cfg, &mut rows);
    }
    report::print(&rows);
    if let Some(path) = args.json {
        let json = serde_json::to_string_pretty(&rows).expect("rows serialize");
        if let Err(e) = std::fs::write(&path, json) {
            eprintln!("cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}
