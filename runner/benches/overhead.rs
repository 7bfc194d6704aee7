//! What running a script through the runner costs over a bare spawn, per
//! mechanism, measured in the same run: a command (default `/bin/true`) N
//! times (default 300) each way, one at a time, after a warm-up.
//!
//! `cargo bench -p execgov-runner --bench overhead [-- RUNS [PROGRAM ARGS...]]`,
//! e.g. `-- 100 /usr/bin/python3 -c pass`.

use std::time::{Duration, Instant};

use execgov_runner::{Avoid, ExecSpec, Limits, RunId, Runner, RunnerOptions};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// (mean, p50, p99) in ms.
fn stats(mut times: Vec<Duration>) -> (f64, f64, f64) {
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    let at = |q: usize| times[(times.len() * q / 100).min(times.len() - 1)];
    (ms(mean), ms(at(50)), ms(at(99)))
}

async fn bare(argv: &[String]) -> Duration {
    let t = Instant::now();
    let status = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .status()
        .await
        .expect("spawn /bin/true");
    assert!(status.success());
    t.elapsed()
}

async fn through(
    runner: &Runner,
    argv: &[String],
    dir: &std::path::Path,
    n: usize,
    tag: &str,
    limits: Limits,
) -> Duration {
    let spec = ExecSpec {
        run_id: RunId(n as i64 + 1),
        argv: argv.to_vec(),
        run_dir: dir.join(format!("{tag}/{n}")),
        pass_env: vec![],
        secrets: vec![],
        timeout: Duration::from_secs(10),
        kill_grace: Duration::from_secs(1),
        log_path: dir.join(format!("{tag}-logs/{n}.log")),
        log_cap: 1 << 20,
        limits,
        inputs: Vec::new(),
    };
    let (tx, _rx) = mpsc::channel(8);
    let t = Instant::now();
    let out = runner.execute(spec, CancellationToken::new(), tx).await;
    let took = t.elapsed();
    assert!(out.succeeded(), "{:?}", out.kind);
    took
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // After the runs, the command; cargo's own `--bench` is left out.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let runs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(300);
    let argv: Vec<String> = match args.get(1..) {
        Some(rest) if !rest.is_empty() => rest.to_vec(),
        _ => vec!["/bin/true".into()],
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let limited = Limits {
        memory: Some(256 << 20),
        processes: Some(64),
    };
    let no_pidns = Avoid {
        pid_namespace: true,
        ..Avoid::default()
    };
    let no_cgroup = Avoid {
        cgroup_v2: true,
        cgroup_v1: true,
        ..Avoid::default()
    };
    let setups = [
        ("all this host gives", Avoid::default(), Limits::default()),
        (
            "all, with memory and process limits",
            Avoid::default(),
            limited,
        ),
        ("cgroups, no PID namespace", no_pidns, Limits::default()),
        ("PID namespace, no cgroup", no_cgroup, Limits::default()),
    ];
    let runners: Vec<Runner> = setups
        .iter()
        .map(|(_, avoid, _)| {
            Runner::start(RunnerOptions {
                scope: "bench".into(),
                avoid: *avoid,
                ..RunnerOptions::default()
            })
            .expect("runner starts")
        })
        .collect();
    // Round robin, so that what else the machine does falls on every setup alike.
    let mut bare_times = Vec::with_capacity(runs);
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); setups.len()];
    for n in 0..runs + 20 {
        let b = bare(&argv).await;
        let mut each = Vec::with_capacity(setups.len());
        for (i, (runner, (_, _, limits))) in runners.iter().zip(&setups).enumerate() {
            each.push(through(runner, &argv, dir.path(), n, &format!("s{i}"), *limits).await);
        }
        if n >= 20 {
            bare_times.push(b);
            for (i, t) in each.into_iter().enumerate() {
                times[i].push(t);
            }
        }
    }
    let (mean, p50, p99) = stats(bare_times);
    println!(
        "{runs} runs of `{}` each, round robin, after 20 of warm-up",
        argv.join(" ")
    );
    println!("bare spawn: mean {mean:.3} ms, p50 {p50:.3}, p99 {p99:.3}");
    for ((name, _, _), (runner, t)) in setups.iter().zip(runners.iter().zip(times)) {
        let (m, p, q) = stats(t);
        println!(
            "{name}: mean {m:.3} ms, p50 {p:.3}, p99 {q:.3}; p50 over bare {:.3} ms\n  ({})",
            p - p50,
            runner.host()
        );
    }
}
