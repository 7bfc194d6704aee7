//! Web UI latency at a million runs.
//!
//! `cargo bench --bench web_runs` (options after `--`: `--runs N` (default
//! 1000000), `--requests N` per case (default 300), `--backend sqlite|postgres|both`;
//! PostgreSQL from $EXECGOV_TEST_POSTGRES_URL).
//!
//! For each backend: a fresh database seeded with N finished runs spread over a
//! year (bulk `INSERT … SELECT` in transactions of 100 000), then the real server
//! (engine, router, sign-in through `login` in chat) answers each case a few hundred
//! times over loopback, one connection per request, and the bench prints p50, p99
//! and max. Target: p99 < 50 ms for every case.

use execgov::clock::SystemClock;
use execgov::command::Command;
use execgov::engine::{Engine, Request};
use execgov::store::Store;
use execgov::types::{Actor, PersonId, Place, Platform, PlatformUser};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Opts {
    runs: i64,
    requests: usize,
    backends: Vec<&'static str>,
}

fn opts() -> Opts {
    let mut o = Opts {
        runs: 1_000_000,
        requests: 300,
        backends: vec!["sqlite", "postgres"],
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--runs" => o.runs = args[i + 1].parse().expect("--runs N"),
            "--requests" => o.requests = args[i + 1].parse().expect("--requests N"),
            "--backend" => {
                o.backends = match args[i + 1].as_str() {
                    "sqlite" => vec!["sqlite"],
                    "postgres" => vec!["postgres"],
                    _ => vec!["sqlite", "postgres"],
                }
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

const MANIFEST: &str =
    "description = \"bench\"\ncommand = [\"/bin/true\"]\n[access]\nrun = [\"group:ops\"]\n";

/// An engine on a fresh database, and the web server on a loopback port.
async fn setup(backend: &str, dir: &std::path::Path) -> (Arc<Engine>, SocketAddr) {
    let url = match backend {
        "sqlite" => format!("sqlite://{}/data/execgov.db", dir.display()),
        _ => execgov::store::testing::fresh_postgres_url().await,
    };
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    for name in ["echo", "report", "deploy"] {
        std::fs::write(
            dir.join(format!("manifests/{name}.toml")),
            format!("name = \"{name}\"\n{MANIFEST}"),
        )
        .unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    std::fs::write(
        dir.join("execgov.toml"),
        format!(
            "manifests = \"manifests\"\ndata_dir = \"data\"\n[database]\nurl = \"{url}\"\n\
             [web]\nlisten = \"{addr}\"\npublic_url = \"http://{addr}\"\nadmins = [\"admin\"]\n\
             [people.admin]\nslack = \"UADMIN\"\n[people.ann]\nslack = \"UANN\"\n[people.bob]\nslack = \"UBOB\"\n\
             [people.carol]\nslack = \"UCAROL\"\n[groups]\nops = [\"bob\"]\n"
        ),
    )
    .unwrap();
    let config = execgov::config::Config::load(Some(&dir.join("execgov.toml"))).unwrap();
    let engine = execgov::app::build_engine(Arc::new(config), Arc::new(SystemClock))
        .await
        .unwrap();
    let state =
        execgov::web::WebState::new(engine.clone(), execgov::web::Readiness::new()).unwrap();
    let app = execgov::web::router(state);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (engine, addr)
}

/// `n` finished runs: three scripts, four requesters, mostly succeeded, one every
/// 30 s over the year before `now`.
async fn seed(store: &Store, n: i64, now: i64) -> Duration {
    let t = Instant::now();
    let start = now - n * 30_000;
    let chunk = 100_000;
    let mut from = 1;
    while from <= n {
        let to = (from + chunk - 1).min(n);
        let select = format!(
            "SELECT CASE i % 3 WHEN 0 THEN 'echo' WHEN 1 THEN 'report' ELSE 'deploy' END, \
             '{{\"n\":' || i || '}}', \
             'person:' || (CASE i % 4 WHEN 0 THEN 'admin' WHEN 1 THEN 'ann' WHEN 2 THEN 'bob' ELSE 'carol' END), \
             CASE i % 4 WHEN 0 THEN 'admin' WHEN 1 THEN 'ann' WHEN 2 THEN 'bob' ELSE 'carol' END, \
             '{{\"platform\":\"slack\",\"channel\":\"C0BENCH\"}}', \
             CASE WHEN i % 17 = 0 THEN 'failed' WHEN i % 101 = 0 THEN 'refused' ELSE 'succeeded' END, \
             'digest', 4, 60000, 'low', 0, '{{}}', \
             {start} + i * 30000, {start} + i * 30000 + 5, {start} + i * 30000 + 10, {start} + i * 30000 + 1500, \
             CASE WHEN i % 17 = 0 THEN 1 ELSE 0 END, 120, 'line ' || i"
        );
        let source = match store.backend_name() {
            "sqlite" => format!(
                "WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {to}) {select} FROM n"
            ),
            _ => format!("{select} FROM generate_series({from}::bigint, {to}::bigint) AS g(i)"),
        };
        let sql = format!(
            "BEGIN; INSERT INTO runs (script, args, requester, requester_person, place, state, manifest_digest, \
             max_concurrent, timeout_ms, risk, quorum, approvers, created_at, queued_at, started_at, finished_at, \
             exit_code, log_bytes, output_tail) {source}; COMMIT;"
        );
        store.exec_raw(&sql).await.expect("seeding runs");
        from = to + 1;
    }
    // Settle into the steady state a real database is in: statistics gathered,
    // the bulk load vacuumed and checkpointed, so that no background work from
    // the seeding runs during the measurement.
    match store.backend_name() {
        "sqlite" => store
            .exec_raw("ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);")
            .await
            .expect("ANALYZE"),
        _ => {
            store
                .exec_raw("VACUUM ANALYZE runs")
                .await
                .expect("VACUUM ANALYZE");
            if let Err(e) = store.exec_raw("CHECKPOINT").await {
                eprintln!("CHECKPOINT refused ({e}); measuring anyway");
            }
        }
    }
    t.elapsed()
}

/// One GET over a fresh connection; the status and the time to the last byte.
async fn get(addr: SocketAddr, path: &str, cookie: &str) -> (u16, Duration, usize) {
    let t = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let status = String::from_utf8_lossy(&buf[..buf.len().min(16)])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, t.elapsed(), buf.len())
}

async fn post(addr: SocketAddr, path: &str, cookie: &str, body: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf).to_string()
}

fn cookie_of(resp: &str, name: &str) -> String {
    let at = resp
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name} cookie in {resp}"));
    let v = &resp[at..];
    v[..v.find(';').unwrap()].to_string()
}

/// Signs `who` in as a person would: `login` in chat, open the link, press the button.
async fn sign_in(engine: &Engine, addr: SocketAddr, who: &str) -> String {
    let actor = Actor::Person {
        person: PersonId(who.into()),
        via: PlatformUser {
            platform: Platform::Slack,
            id: format!("U{}", who.to_uppercase()),
        },
        impersonated_by: None,
    };
    let command = Command::parse("login").unwrap();
    let reply = engine
        .handle(Request {
            actor,
            place: Place::new(Platform::Slack, "C0BENCH"),
            command,
            private: true,
            files: Vec::new(),
        })
        .await;
    let link = reply.text[reply.text.find("http://").unwrap()..]
        .trim()
        .to_string();
    let token = link.rsplit('/').next().unwrap().to_string();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET /login/{token} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let page = String::from_utf8_lossy(&buf).to_string();
    let form = cookie_of(&page, "execgov_form");
    let csrf = form.trim_start_matches("execgov_form=");
    let resp = post(addr, "/login", &form, &format!("csrf={csrf}&token={token}")).await;
    cookie_of(&resp, "execgov_session")
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn case(addr: SocketAddr, cookie: &str, name: &str, paths: &[String], n: usize) -> bool {
    // Warm-up: a few requests that are not counted.
    for p in paths.iter().take(5) {
        get(addr, p, cookie).await;
    }
    let mut times = Vec::with_capacity(n);
    let mut bytes = 0;
    for i in 0..n {
        let path = &paths[i % paths.len()];
        let (status, took, len) = get(addr, path, cookie).await;
        assert_eq!(status, 200, "{path} answered {status}");
        times.push(took);
        bytes = len;
    }
    let slowest = times
        .iter()
        .enumerate()
        .max_by_key(|(_, t)| **t)
        .map(|(i, _)| i)
        .unwrap_or(0);
    times.sort();
    let (p50, p99, max) = (pct(&times, 0.50), pct(&times, 0.99), *times.last().unwrap());
    let ok = p99 < Duration::from_millis(50);
    println!(
        "  {name:<38} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms (request {slowest})  ({} B){}",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        bytes,
        if ok { "" } else { "  ABOVE TARGET" }
    );
    ok
}

fn main() {
    let o = opts();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut all_ok = true;
    for backend in &o.backends {
        let dir = tempfile::tempdir().unwrap();
        all_ok &= rt.block_on(async {
            let (engine, addr) = setup(backend, dir.path()).await;
            let now = engine.now();
            let took = seed(engine.store(), o.runs, now).await;
            println!(
                "{backend}: seeded {} runs in {:.1} s",
                o.runs,
                took.as_secs_f64()
            );
            let admin = sign_in(&engine, addr, "admin").await;
            let ann = sign_in(&engine, addr, "ann").await;
            let bob = sign_in(&engine, addr, "bob").await;
            let day = |days_ago: i64| {
                chrono::DateTime::from_timestamp_millis(now - days_ago * 86_400_000)
                    .unwrap()
                    .format("%Y-%m-%d")
                    .to_string()
            };
            let mut rng_state = 0x9e37_79b9_7f4a_7c15_u64;
            let mut random_id = || {
                rng_state ^= rng_state << 13;
                rng_state ^= rng_state >> 7;
                rng_state ^= rng_state << 17;
                (rng_state % o.runs as u64) as i64 + 1
            };
            let run_pages: Vec<String> =
                (0..64).map(|_| format!("/runs/{}", random_id())).collect();
            let deep_pages: Vec<String> = (0..64)
                .map(|_| format!("/runs?before={}", random_id()))
                .collect();
            let n = o.requests;
            let mut ok = true;
            ok &= case(
                addr,
                &admin,
                "/runs (admin, first page)",
                &["/runs".into()],
                n,
            )
            .await;
            ok &= case(
                addr,
                &admin,
                "/runs?before=… (admin, random page)",
                &deep_pages,
                n,
            )
            .await;
            ok &= case(
                addr,
                &admin,
                "/runs?script=report&state=failed",
                &["/runs?script=report&state=failed".into()],
                n,
            )
            .await;
            let dated = format!("/runs?person=ann&from={}&to={}", day(200), day(190));
            ok &= case(
                addr,
                &admin,
                "/runs?person=ann&from=…&to=… (old)",
                &[dated],
                n,
            )
            .await;
            ok &= case(
                addr,
                &ann,
                "/runs (ann: her own runs only)",
                &["/runs".into()],
                n,
            )
            .await;
            ok &= case(
                addr,
                &bob,
                "/runs?state=failed (bob: a group's)",
                &["/runs?state=failed".into()],
                n,
            )
            .await;
            ok &= case(
                addr,
                &admin,
                "/runs/{id} (admin, random ids)",
                &run_pages,
                n,
            )
            .await;
            engine.store().close().await;
            ok
        });
    }
    println!(
        "{}",
        if all_ok {
            "all cases within p99 < 50 ms"
        } else {
            "some cases ABOVE the 50 ms p99 target"
        }
    );
}
