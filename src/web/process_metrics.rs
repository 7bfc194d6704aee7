//! The process's own metrics in the names every Prometheus client library uses
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, …), read from
//! `/proc/self` at each scrape, and `execgov_build_info`.
//!
//! Read by hand rather than through the `prometheus` crate's `process` feature:
//! five numbers from three files do not need `procfs` and its dependencies.

use std::fmt::Write as _;

/// What `/proc/self` says about this process now.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    threads: u64,
    open_fds: u64,
    max_fds: Option<u64>,
    start_time_seconds: f64,
}

/// The process metrics and the build info in Prometheus's text format; on a
/// system without `/proc` only the build info.
pub(super) fn render() -> String {
    let mut out = build_info();
    match sample() {
        Ok(s) => out.push_str(&format_sample(&s)),
        Err(e) => tracing::debug!(error = %e, "process metrics unavailable"),
    }
    out
}

/// `execgov_build_info{version="0.1.0"} 1`: which build is answering.
fn build_info() -> String {
    format!(
        "# HELP execgov_build_info The ExecGov build serving, as labels; always 1.\n\
         # TYPE execgov_build_info gauge\n\
         execgov_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    )
}

fn format_sample(s: &Sample) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    metric(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        s.cpu_seconds.to_string(),
    );
    metric(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        s.resident_bytes.to_string(),
    );
    metric(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        s.virtual_bytes.to_string(),
    );
    metric(
        "process_threads",
        "gauge",
        "Number of OS threads in the process.",
        s.threads.to_string(),
    );
    metric(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        s.open_fds.to_string(),
    );
    if let Some(max) = s.max_fds {
        metric(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max.to_string(),
        );
    }
    metric(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        s.start_time_seconds.to_string(),
    );
    out
}

fn sample() -> std::io::Result<Sample> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let boot = std::fs::read_to_string("/proc/stat")?;
    let open_fds = std::fs::read_dir("/proc/self/fd")?.count() as u64;
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| max_open_files(&l));
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let page = rustix::param::page_size() as u64;
    let bad = |what: &str| std::io::Error::other(format!("unexpected {what}"));
    let stat = parse_stat(&stat).ok_or_else(|| bad("/proc/self/stat"))?;
    let (virtual_pages, resident_pages) = parse_statm(&statm).ok_or_else(|| bad("statm"))?;
    let boot_time = boot_time(&boot).ok_or_else(|| bad("/proc/stat"))?;
    Ok(Sample {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        resident_bytes: resident_pages * page,
        virtual_bytes: virtual_pages * page,
        threads: stat.threads,
        open_fds,
        max_fds,
        start_time_seconds: boot_time as f64 + stat.start_ticks as f64 / ticks,
    })
}

/// The fields of `/proc/self/stat` used here, in clock ticks where they are times.
#[derive(Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    threads: u64,
    start_ticks: u64,
}

/// Fields counted from after the command name, which may hold spaces and
/// parentheses: the text after its last `)` starts at field 3 (state).
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field n (1-based, as proc(5) numbers them) is fields[n - 3].
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        threads: field(20)?,
        start_ticks: field(22)?,
    })
}

/// `size resident …` in pages.
fn parse_statm(text: &str) -> Option<(u64, u64)> {
    let mut it = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    Some((it.next()??, it.next()??))
}

/// `btime N` in `/proc/stat`: boot time in seconds since the epoch.
fn boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit on the `Max open files` line of `/proc/self/limits`.
fn max_open_files(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis, as a process may set.
        let line = "4242 (exec gov) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 1000000 300 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                utime: 250,
                stime: 75,
                threads: 9,
                start_ticks: 123456,
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn limits_statm_and_boot_time_are_read() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63704                63704                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(parse_statm("2000 300 100 1 0 500 0\n"), Some((2000, 300)));
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1767225600\nprocesses 9\n"),
            Some(1_767_225_600)
        );
    }

    #[test]
    fn this_process_is_measured() {
        let s = sample().expect("Linux has /proc");
        assert!(s.resident_bytes > 0, "{s:?}");
        assert!(s.open_fds >= 3, "stdin, stdout, stderr at least: {s:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        assert!(
            s.start_time_seconds <= now + 1.0 && s.start_time_seconds > now - 86_400.0,
            "started in the last day, not in the future: {} vs now {now}",
            s.start_time_seconds
        );
        let text = render();
        assert!(
            text.contains(&format!(
                "execgov_build_info{{version=\"{}\"}} 1\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter\n"),
            "{text}"
        );
    }
}
