//! Deployed functions against `/run`, in one run: a call of a deployed
//! function by name (`POST /tenants/{t}/functions/{f}/invoke`, the code
//! stored once) against `/run` with the same script in every body, warm
//! (`"none"`) and clean (`"frozen"`), and the function's HTTP route
//! calling its fetch handler with a `Request`.
//!
//! Run: `cargo bench --bench functions` (env `BENCH_REQUESTS` sets the
//! samples per row, default 2000, in 6 interleaved rounds).

mod common;

use bytes::Bytes;
use serde_json::json;

use common::{Spawned, client_runtime, connect, env_num, latency_interleaved, machine, send};

const SCRIPT: &str = "export function add(p: { a: number; b: number }) { return p.a + p.b; }\n\
                      export default { fetch: async (req: Request) => Response.json({ sum: (await req.json()).a + 1 }) };";

fn main() {
    let n: usize = env_num("BENCH_REQUESTS", 2000);
    let rt = client_runtime();
    let dir = std::env::temp_dir().join(format!("isoexec-bench-fn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rows = rt.block_on(async {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_isoexec"));
        cmd.env("PORT", "0")
            .env("LOG_LEVEL", "error")
            .env("POOL_SIZE", "2")
            .env("WORKSPACE_DIR", dir.join("ws"))
            .env("DATA_DIR", dir.join("data"));
        let server = Spawned::start(cmd, common::ISOEXEC_LISTENING);
        let addr = server.addr;
        let mut c = connect(addr).await;
        let body = Bytes::from(json!({"id": "bench", "limits": {"concurrency": 64}}).to_string());
        let (status, reply) = send(&mut c, addr, "/tenants", &body).await;
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&reply));
        for (name, isolation) in [("warm", "none"), ("clean", "frozen")] {
            let body = Bytes::from(json!({"code": SCRIPT, "isolation": isolation}).to_string());
            let req = hyper::Request::put(format!("/tenants/bench/functions/{name}"))
                .header("host", addr.to_string())
                .body(http_body_util::Full::new(body))
                .expect("request");
            c.ready().await.expect("ready");
            let resp = c.send_request(req).await.expect("deploy");
            assert_eq!(resp.status().as_u16(), 201);
            use http_body_util::BodyExt;
            let _ = resp.into_body().collect().await;
        }
        let payload = json!({"a": 2, "b": 3});
        let run = |isolation: &str| {
            Bytes::from(
                json!({"script": SCRIPT, "fn": "add", "payload": payload, "isolation": isolation})
                    .to_string(),
            )
        };
        let invoke = Bytes::from(json!({"fn": "add", "payload": payload}).to_string());
        let targets = [
            (addr, "/run", run("none")),
            (addr, "/tenants/bench/functions/warm/invoke", invoke.clone()),
            (addr, "/run", run("frozen")),
            (addr, "/tenants/bench/functions/clean/invoke", invoke),
            (addr, "/t/bench/warm", Bytes::from(r#"{"a": 1}"#)),
        ];
        let lat = latency_interleaved(&targets, 6, n).await;
        drop(server);
        [
            "`/run`, script in the body, `none` (warm)",
            "invoke by name, warm",
            "`/run`, script in the body, `frozen` (clean)",
            "invoke by name, `frozen` (clean)",
            "HTTP route, fetch handler (`Request` → `Response`), warm",
        ]
        .into_iter()
        .zip(lat)
        .collect::<Vec<_>>()
    });
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", machine());
    println!(
        "median and p99 of {n} sequential calls per row, one keep-alive connection, 6 interleaved rounds"
    );
    println!();
    println!("| case | median | p99 | vs `/run` warm |");
    println!("|---|---:|---:|---:|");
    let base = rows[0].1.median_us;
    for (name, lat) in &rows {
        println!(
            "| {name} | {:.0} µs | {:.0} µs | {:.2}× |",
            lat.median_us,
            lat.p99_us,
            lat.median_us / base
        );
    }
}
