//! Counters for `/metrics`, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the request latency histogram buckets.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
pub struct Metrics {
    /// Requests by route, then status (looked up by `&str`: no allocation per request).
    requests: Mutex<BTreeMap<String, BTreeMap<u16, u64>>>,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_ns: AtomicU64,
    instantiate_count: AtomicU64,
    /// Nanoseconds: sums of whole microseconds would lose most of a few-µs figure.
    instantiate_sum_ns: AtomicU64,
    pub live_instances: AtomicI64,
    pub traps: AtomicU64,
    pub timeouts: AtomicU64,
    /// Responses cut off mid-body (handler failure while streaming, client too slow).
    pub aborted: AtomicU64,
    /// Connections closed because the client did not take a response in time.
    pub client_stalls: AtomicU64,
    /// Connections refused over `max_connections`.
    pub refused_connections: AtomicU64,
}

impl Metrics {
    pub fn request(&self, route: &str, status: u16, latency: Duration) {
        {
            let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            let by_status = match requests.get_mut(route) {
                Some(m) => m,
                None => requests.entry(route.to_string()).or_default(),
            };
            *by_status.entry(status).or_default() += 1;
        }
        let secs = latency.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.latency_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_ns.fetch_add(latency.as_nanos() as u64, Relaxed);
    }

    pub fn instantiated(&self, took: Duration) {
        self.instantiate_count.fetch_add(1, Relaxed);
        self.instantiate_sum_ns.fetch_add(took.as_nanos() as u64, Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP carnac_requests_total Requests by route and status.\n# TYPE carnac_requests_total counter\n",
        );
        for (route, by_status) in self.requests.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            for (status, n) in by_status {
                let _ = writeln!(
                    out,
                    "carnac_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    route.replace('"', "\\\"")
                );
            }
        }
        out.push_str("# HELP carnac_request_duration_seconds Request latency.\n# TYPE carnac_request_duration_seconds histogram\n");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "carnac_request_duration_seconds_bucket{{le=\"{b}\"}} {}",
                self.latency_buckets[i].load(Relaxed)
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(out, "carnac_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "carnac_request_duration_seconds_sum {}", self.latency_sum_ns.load(Relaxed) as f64 / 1e9);
        let _ = writeln!(out, "carnac_request_duration_seconds_count {count}");
        let _ = writeln!(out, "# HELP carnac_instantiate_seconds Time to create each request's instance.\n# TYPE carnac_instantiate_seconds summary");
        let _ = writeln!(out, "carnac_instantiate_seconds_sum {}", self.instantiate_sum_ns.load(Relaxed) as f64 / 1e9);
        let _ = writeln!(out, "carnac_instantiate_seconds_count {}", self.instantiate_count.load(Relaxed));
        let _ =
            writeln!(out, "# HELP carnac_live_instances Instances running now.\n# TYPE carnac_live_instances gauge");
        let _ = writeln!(out, "carnac_live_instances {}", self.live_instances.load(Relaxed));
        let _ =
            writeln!(out, "# HELP carnac_traps_total Requests whose guest trapped.\n# TYPE carnac_traps_total counter");
        let _ = writeln!(out, "carnac_traps_total {}", self.traps.load(Relaxed));
        let _ = writeln!(out, "# HELP carnac_timeouts_total Requests interrupted at their deadline.\n# TYPE carnac_timeouts_total counter");
        let _ = writeln!(out, "carnac_timeouts_total {}", self.timeouts.load(Relaxed));
        let _ = writeln!(out, "# HELP carnac_aborted_responses_total Responses cut off mid-body.\n# TYPE carnac_aborted_responses_total counter");
        let _ = writeln!(out, "carnac_aborted_responses_total {}", self.aborted.load(Relaxed));
        let _ = writeln!(out, "# HELP carnac_client_stalls_total Connections closed because the client did not take a response in time.\n# TYPE carnac_client_stalls_total counter");
        let _ = writeln!(out, "carnac_client_stalls_total {}", self.client_stalls.load(Relaxed));
        let _ = writeln!(out, "# HELP carnac_refused_connections_total Connections refused over max_connections.\n# TYPE carnac_refused_connections_total counter");
        let _ = writeln!(out, "carnac_refused_connections_total {}", self.refused_connections.load(Relaxed));
        out
    }
}

/// `carnac_tier_info{tier="..."} 1`: the tier that runs the handlers now
/// (`interp`, `cranelift` or `auto`, as `tier =` spells it; it changes on reload).
pub fn tier_info(tier: carnac::Strategy) -> String {
    let name = match tier {
        carnac::Strategy::Cranelift => "cranelift",
        carnac::Strategy::Auto => "auto",
        _ => "interp",
    };
    format!(
        "# HELP carnac_tier_info The tier that runs the handlers.\n# TYPE carnac_tier_info gauge\n\
         carnac_tier_info{{tier=\"{name}\"}} 1\n"
    )
}
