//! The benchmark harness: `cargo run --release -p plumb-bench -- <scenario>`.
//!
//! A scenario measures plumb and, in the same invocation, a baseline (another tool, or the
//! real Kubernetes API server), so the ratio means something on a noisy machine. Four
//! scenarios that nothing else can race (source-render-cached, engine-health-10k,
//! engine-lua-check, engine-recompare) compare with a fixed budget instead, and say so.
//! Every scenario ends by printing exactly one line:
//!
//! `RESULT <scenario>: <figure> <unit> | baseline <what>: <figure> <unit> | ratio <x>`
//!
//! or, for the fixed-budget ones,
//!
//! `RESULT <scenario>: <figure> <unit> | budget <what>: <figure> <unit> (fixed, not measured) | ratio <x>`
//!
//! Scenarios live in one module per area; each module lists its scenarios in `SCENARIOS`
//! and this file only dispatches.

mod apiserver;
mod controller;
mod engine;
mod git_fetch;
mod harness;
mod source;
mod targets;
mod workloads;

use clap::Parser;
use harness::Scenario;

/// Every module's scenarios, in the order `list` prints them.
fn all_scenarios() -> Vec<&'static Scenario> {
    // One line per area module: `area::SCENARIOS,`.
    let areas: &[&'static [Scenario]] = &[
        apiserver::SCENARIOS,
        source::SCENARIOS,
        engine::SCENARIOS,
        git_fetch::SCENARIOS,
        workloads::SCENARIOS,
        controller::SCENARIOS,
    ];
    areas.iter().flat_map(|area| area.iter()).collect()
}

#[derive(Parser)]
#[command(name = "plumb-bench", about = "plumb's benchmark harness")]
struct Args {
    /// Scenario to run, or `list` (default) to print them all.
    #[arg(default_value = "list")]
    scenario: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scenarios = all_scenarios();
    if args.scenario == "list" {
        for scenario in &scenarios {
            println!("{:<32} {}", scenario.name, scenario.about);
        }
        return Ok(());
    }
    let Some(scenario) = scenarios.iter().find(|s| s.name == args.scenario) else {
        anyhow::bail!(
            "unknown scenario {:?}; `plumb-bench list` prints the scenarios",
            args.scenario
        );
    };
    let outcome = (scenario.run)()?;
    println!("{}", outcome.result_line(scenario.name));
    Ok(())
}
