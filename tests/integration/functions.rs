//! Trusted-tenant functions over real HTTP: tenants and keys, versions and
//! rollback, invoke by name, HTTP routes with fetch handlers, isolation
//! between tenants, per-tenant limits, secrets, usage and logs, and the
//! registry shared through PostgreSQL.

use std::time::Duration;

use serde_json::{Value, json};

use crate::pg::Postgres;
use crate::support::{Conn, Reply, Server};

const OPERATOR: &str = "operator-key";

/// A tenant's client: its key, and the server.
struct Client<'a> {
    s: &'a Server,
    key: String,
}

impl Client<'_> {
    async fn send(&self, method: &str, path: &str, body: Value) -> Reply {
        let mut conn = self.s.connect().await;
        self.send_on(&mut conn, method, path, body).await
    }

    /// As [`Client::send`], on the keep-alive connection `conn`.
    async fn send_on(&self, conn: &mut Conn, method: &str, path: &str, body: Value) -> Reply {
        let auth = format!("Bearer {}", self.key);
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        conn.request(method, path, &[("authorization", auth.as_str())], body)
            .await
    }
}

fn operator(s: &Server) -> Client<'_> {
    Client {
        s,
        key: OPERATOR.into(),
    }
}

/// Creates tenant `id` with `limits` and a key with `scopes`.
async fn tenant<'a>(s: &'a Server, id: &str, limits: Value, scopes: Value) -> Client<'a> {
    let op = operator(s);
    let r = op
        .send("POST", "/tenants", json!({"id": id, "limits": limits}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = op
        .send(
            "POST",
            &format!("/tenants/{id}/keys"),
            json!({"scopes": scopes}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    Client {
        s,
        key: r.json()["key"].as_str().unwrap().to_string(),
    }
}

async fn deploy(c: &Client<'_>, tenant: &str, name: &str, body: Value) -> Reply {
    c.send("PUT", &format!("/tenants/{tenant}/functions/{name}"), body)
        .await
}

async fn invoke(c: &Client<'_>, tenant: &str, name: &str, f: &str, payload: Value) -> Reply {
    let mut conn = c.s.connect().await;
    invoke_on(&mut conn, c, tenant, name, f, payload).await
}

/// As [`invoke`], on the keep-alive connection `conn`.
async fn invoke_on(
    conn: &mut Conn,
    c: &Client<'_>,
    tenant: &str,
    name: &str,
    f: &str,
    payload: Value,
) -> Reply {
    let path = format!("/tenants/{tenant}/functions/{name}/invoke");
    c.send_on(conn, "POST", &path, json!({"fn": f, "payload": payload}))
        .await
}

fn server() -> Server {
    Server::start_with(&[("API_KEY", OPERATOR), ("POOL_SIZE", "2")])
}

#[tokio::test]
async fn a_tenants_key_reaches_only_its_own_tenant() {
    let s = server();
    let a = tenant(&s, "alpha", json!({}), json!(["deploy", "invoke"])).await;
    let b = tenant(&s, "beta", json!({}), json!(["deploy", "invoke"])).await;
    let r = deploy(&a, "alpha", "f", json!({"code": "export const f = () => 'alpha'; export default { fetch() { return new Response('alpha') } }"})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = a
        .send(
            "PUT",
            "/tenants/alpha/functions/f/secrets",
            json!({"K": "alpha-secret"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Every route of alpha's, tried with beta's key: the 404 a tenant
    // that does not exist gets, and nothing else.
    let probes: [(&str, &str, Value); 17] = [
        ("GET", "/tenants/alpha", Value::Null),
        ("GET", "/tenants/alpha/functions", Value::Null),
        ("GET", "/tenants/alpha/functions/f", Value::Null),
        (
            "PUT",
            "/tenants/alpha/functions/f",
            json!({"code": "export const f = () => 'beta'"}),
        ),
        ("DELETE", "/tenants/alpha/functions/f", Value::Null),
        ("GET", "/tenants/alpha/functions/f/versions", Value::Null),
        ("GET", "/tenants/alpha/functions/f/versions/1", Value::Null),
        (
            "POST",
            "/tenants/alpha/functions/f/rollback",
            json!({"version": 1}),
        ),
        (
            "POST",
            "/tenants/alpha/functions/f/invoke",
            json!({"fn": "f"}),
        ),
        ("GET", "/tenants/alpha/functions/f/secrets", Value::Null),
        (
            "PUT",
            "/tenants/alpha/functions/f/secrets",
            json!({"K": "x"}),
        ),
        (
            "DELETE",
            "/tenants/alpha/functions/f/secrets/K",
            Value::Null,
        ),
        ("GET", "/tenants/alpha/functions/f/logs", Value::Null),
        ("GET", "/tenants/alpha/secrets", Value::Null),
        ("GET", "/tenants/alpha/usage", Value::Null),
        ("GET", "/t/alpha/f", Value::Null),
        ("POST", "/t/alpha/f/deep/path", json!({})),
    ];
    for (method, path, body) in &probes {
        let r = b.send(method, path, body.clone()).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text());
        assert_eq!(r.json()["kind"], "not_found", "{method} {path}");
        assert!(!r.text().contains("alpha-secret"), "{method} {path}");
        // The same as for a tenant nobody made.
        let ghost = path.replace("alpha", "ghost");
        let r2 = b.send(method, &ghost, body.clone()).await;
        assert_eq!(r2.status, 404, "{method} {ghost}");
    }
    // Nothing beta tried changed alpha's function.
    let r = invoke(&a, "alpha", "f", "f", Value::Null).await;
    assert_eq!(r.json()["result"], "alpha", "{}", r.text());
    let r = a
        .send("GET", "/tenants/alpha/functions/f/secrets", Value::Null)
        .await;
    assert_eq!(r.json()["secrets"][0]["name"], "K");

    // Operator routes refuse tenant keys.
    for (method, path) in [
        ("GET", "/tenants"),
        ("POST", "/tenants/alpha/keys"),
        ("GET", "/tenants/alpha/keys"),
        ("DELETE", "/tenants/alpha"),
        ("PATCH", "/tenants/alpha"),
    ] {
        let r = a.send(method, path, json!({})).await;
        assert_eq!(r.status, 401, "{method} {path}");
    }
    // Without a key: 401 everywhere, the HTTP route too.
    let r = s.request("GET", "/t/alpha/f", &[], "").await;
    assert_eq!(r.status, 401);

    // An invoke-only key invokes and may not deploy; a revoked key is no key.
    let op = operator(&s);
    let r = op
        .send(
            "POST",
            "/tenants/alpha/keys",
            json!({"scopes": ["invoke"], "label": "app"}),
        )
        .await;
    let invoker = Client {
        s: &s,
        key: r.json()["key"].as_str().unwrap().to_string(),
    };
    let key_id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        invoke(&invoker, "alpha", "f", "f", Value::Null)
            .await
            .status,
        200
    );
    let r = deploy(
        &invoker,
        "alpha",
        "f",
        json!({"code": "export const f = () => 1"}),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["kind"], "forbidden");
    let r = op.send("GET", "/tenants/alpha/keys", Value::Null).await;
    let listed = r.text();
    assert!(listed.contains(&key_id));
    assert!(!listed.contains(&invoker.key), "a key is shown once");
    let r = op
        .send(
            "DELETE",
            &format!("/tenants/alpha/keys/{key_id}"),
            Value::Null,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = invoke(&invoker, "alpha", "f", "f", Value::Null).await;
    assert_eq!(r.status, 401, "{}", r.text());

    // Removing a tenant removes what it owns; its keys stop working.
    assert_eq!(
        op.send("DELETE", "/tenants/alpha", Value::Null)
            .await
            .status,
        204
    );
    let r = invoke(&a, "alpha", "f", "f", Value::Null).await;
    assert_eq!(r.status, 401);
    let r = op
        .send("GET", "/tenants/alpha/functions/f", Value::Null)
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn versions_are_checked_immutable_and_rolled_back() {
    let s = server();
    let a = tenant(&s, "acme", json!({}), json!(["deploy", "invoke"])).await;
    let r = deploy(
        &a,
        "acme",
        "greet",
        json!({"code": "export function hi(p: string) { return `v1 ${p}` }"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["version"], 1);
    assert_eq!(r.json()["exports"], json!(["hi"]));
    assert_eq!(r.json()["fetch"], false);
    let sha1 = r.json()["sha256"].as_str().unwrap().to_string();
    // The same code and settings again: no new version.
    let r = deploy(
        &a,
        "acme",
        "greet",
        json!({"code": "export function hi(p: string) { return `v1 ${p}` }"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["created"], false);
    assert_eq!(r.json()["version"], 1);
    let r = deploy(
        &a,
        "acme",
        "greet",
        json!({"code": "export function hi(p: string) { return `v2 ${p}` }"}),
    )
    .await;
    assert_eq!(r.json()["version"], 2);
    assert_eq!(
        invoke(&a, "acme", "greet", "hi", json!("x")).await.json()["result"],
        "v2 x"
    );

    // Broken code is refused when deployed, and the head stays.
    let broken = [
        ("export function hi( {", "syntax_error"),
        (
            "import './missing.ts'; export const hi = () => 1",
            "bad_request",
        ),
        (
            "throw new Error('at the top'); export const hi = () => 1",
            "bad_request",
        ),
    ];
    for (code, kind) in broken {
        let r = deploy(&a, "acme", "greet", json!({"code": code})).await;
        assert_eq!(r.status, 400, "{code}: {}", r.text());
        assert_eq!(r.json()["kind"], kind, "{code}: {}", r.text());
        assert!(r.json()["error"].as_str().unwrap().contains("not deployed"));
    }
    assert_eq!(
        invoke(&a, "acme", "greet", "hi", json!("x")).await.json()["result"],
        "v2 x"
    );

    let r = a
        .send("GET", "/tenants/acme/functions/greet/versions", Value::Null)
        .await;
    assert_eq!(r.json()["head"], 2);
    let versions: Vec<u64> = r.json()["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1]);
    let r = a
        .send(
            "GET",
            "/tenants/acme/functions/greet/versions/1",
            Value::Null,
        )
        .await;
    assert_eq!(r.json()["sha256"], sha1.as_str());
    assert!(r.json()["code"].as_str().unwrap().contains("v1"));

    let r = a
        .send(
            "POST",
            "/tenants/acme/functions/greet/rollback",
            json!({"version": 1}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["version"], 1);
    assert_eq!(
        invoke(&a, "acme", "greet", "hi", json!("x")).await.json()["result"],
        "v1 x"
    );
    let r = a
        .send(
            "POST",
            "/tenants/acme/functions/greet/rollback",
            json!({"version": 9}),
        )
        .await;
    assert_eq!(r.status, 404);

    // A missing export names the ones there are.
    let r = invoke(&a, "acme", "greet", "nope", Value::Null).await;
    assert_eq!(r.json()["kind"], "fn_not_found", "{}", r.text());

    let r = a
        .send("DELETE", "/tenants/acme/functions/greet", Value::Null)
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        invoke(&a, "acme", "greet", "hi", json!("x")).await.status,
        404
    );
    let r = a.send("GET", "/tenants/acme/functions", Value::Null).await;
    assert_eq!(r.json()["functions"], json!([]));
}

const WORKER: &str = r#"
export default {
  async fetch(request: Request, env: Record<string, string>) {
    const url = new URL(request.url);
    if (url.pathname === "/bytes") {
      return new Response(new Uint8Array([0, 1, 2, 255]), { headers: { "content-type": "application/octet-stream" } });
    }
    if (url.pathname === "/echo") {
      const body = await request.text();
      return new Response(body.toUpperCase(), { status: 202, headers: { "x-method": request.method, "x-seen": request.headers.get("x-test") ?? "none" } });
    }
    if (url.pathname === "/missing") return new Response("nothing here", { status: 404 });
    if (url.pathname === "/throw") throw new Error("handler failed");
    return Response.json({ path: url.pathname, query: url.searchParams.get("q"), prefix: request.headers.get("x-forwarded-prefix") });
  },
};
"#;

const DENO_SERVE: &str = r#"
Deno.serve(async (req) => {
  const { name } = await req.json();
  const headers = new Headers({ "Content-Type": "application/json" });
  headers.append("Set-Cookie", "a=1");
  headers.append("Set-Cookie", "b=2");
  return new Response(JSON.stringify({ hello: name }), { headers });
});
"#;

#[tokio::test]
async fn http_routes_call_fetch_handlers_as_the_platforms_do() {
    let s = server();
    let a = tenant(&s, "web", json!({}), json!(["deploy", "invoke"])).await;
    let r = deploy(&a, "web", "worker", json!({"code": WORKER})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["fetch"], true);
    let key = format!("Bearer {}", a.key);
    let auth = [("authorization", key.as_str())];

    let r = s
        .request("GET", "/t/web/worker/some/path?q=7", &auth, "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"path": "/some/path", "query": "7", "prefix": "/t/web/worker"})
    );
    assert_eq!(r.header("content-type"), Some("application/json"));

    let headers = [("authorization", key.as_str()), ("x-test", "yes")];
    let r = s
        .request("PUT", "/t/web/worker/echo", &headers, "shout")
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(r.text(), "SHOUT");
    assert_eq!(r.header("x-method"), Some("PUT"));
    assert_eq!(r.header("x-seen"), Some("yes"));

    let r = s.request("GET", "/t/web/worker/bytes", &auth, "").await;
    assert_eq!(r.body, [0u8, 1, 2, 255]);
    let r = s.request("GET", "/t/web/worker/missing", &auth, "").await;
    assert_eq!((r.status, r.text().as_str()), (404, "nothing here"));
    let r = s.request("GET", "/t/web/worker/throw", &auth, "").await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["kind"], "exception");

    // Deno.serve, as Deno Deploy and Supabase functions are written.
    let r = deploy(
        &a,
        "web",
        "deno",
        json!({"code": DENO_SERVE, "public": true}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["fetch"], true);
    // Public: no key needed.
    let r = s
        .request("POST", "/t/web/deno", &[], r#"{"name": "world"}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"hello": "world"}));
    let cookies: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies.len(), 2);

    // No fetch handler: the route says so.
    deploy(
        &a,
        "web",
        "plain",
        json!({"code": "export const f = () => 1"}),
    )
    .await;
    let r = s.request("GET", "/t/web/plain", &auth, "").await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("no fetch handler"), "{}", r.text());

    // The standard classes behave as the standard says.
    let r = deploy(&a, "web", "std", json!({"code": r#"
        export function check() {
          const h = new Headers([["B", "2"], ["a", "1"]]);
          h.append("a", "3");
          const req = new Request("https://x.test/p", { method: "post", body: "hi" });
          let threw = false;
          try { new Request("https://x.test", { method: "GET", body: "no" }); } catch { threw = true; }
          const res = Response.redirect("https://x.test/next", 301);
          return { entries: [...h], method: req.method, get: h.get("A"), threw,
                   status: res.status, location: res.headers.get("location"), ok: new Response(null, { status: 204 }).ok };
        }
    "#})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = invoke(&a, "web", "std", "check", Value::Null).await;
    assert_eq!(
        r.json()["result"],
        json!({"entries": [["a", "1, 3"], ["b", "2"]], "method": "POST", "get": "1, 3", "threw": true,
               "status": 301, "location": "https://x.test/next", "ok": true}),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn warm_state_is_the_functions_own_and_never_another_tenants() {
    // One isolate thread: every call of every tenant that is not run on
    // its connection's thread lands on it.
    let s = Server::start_with(&[("API_KEY", OPERATOR), ("POOL_SIZE", "1")]);
    let a = tenant(&s, "planter", json!({}), json!(["deploy", "invoke"])).await;
    let b = tenant(&s, "prober", json!({}), json!(["deploy", "invoke"])).await;
    let counter = "let n = 0; export function count() { (globalThis as any).planted = 'by planter'; return ++n; }";
    assert_eq!(
        deploy(&a, "planter", "c", json!({"code": counter}))
            .await
            .status,
        201
    );
    assert_eq!(
        deploy(
            &a,
            "planter",
            "clean",
            json!({"code": counter, "isolation": "frozen"})
        )
        .await
        .status,
        201
    );
    let probe = "export function look() { return (globalThis as any).planted ?? null; }";
    for isolation in ["none", "frozen"] {
        let name = format!("probe-{isolation}");
        let r = deploy(
            &b,
            "prober",
            &name,
            json!({"code": probe, "isolation": isolation}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    // Every call on one connection: all of them run on the thread that
    // serves it, in its kept isolates.
    let mut conn = s.connect().await;
    for round in 1..=3 {
        // Warm: the function's own state carries on between its calls.
        let r = invoke_on(&mut conn, &a, "planter", "c", "count", Value::Null).await;
        assert_eq!(r.json()["result"], round, "{}", r.text());
        // Clean: nothing carries over.
        let r = invoke_on(&mut conn, &a, "planter", "clean", "count", Value::Null).await;
        assert_eq!(r.json()["result"], 1, "{}", r.text());
        for isolation in ["none", "frozen"] {
            let name = format!("probe-{isolation}");
            let r = invoke_on(&mut conn, &b, "prober", &name, "look", Value::Null).await;
            assert_eq!(r.json()["result"], Value::Null, "{isolation}: {}", r.text());
        }
    }
    // Calls on other connections (other threads' isolates, or the isolate
    // thread's) see no other tenant's state either.
    for _ in 0..2 {
        let r = invoke(&a, "planter", "c", "count", Value::Null).await;
        assert!(
            r.json()["result"].as_u64().is_some_and(|n| n >= 1),
            "{}",
            r.text()
        );
        for isolation in ["none", "frozen"] {
            let name = format!("probe-{isolation}");
            let r = invoke(&b, "prober", &name, "look", Value::Null).await;
            assert_eq!(r.json()["result"], Value::Null, "{isolation}: {}", r.text());
        }
    }
}

#[tokio::test]
async fn each_tenant_is_held_to_its_limits() {
    let s = server();
    let op = operator(&s);
    let a = tenant(
        &s,
        "small",
        json!({"timeoutMs": 300, "concurrency": 1, "memoryMb": 16, "allowNet": []}),
        json!(["deploy", "invoke"]),
    )
    .await;
    let code = r#"
        export async function sleep(ms: number) { await new Promise((r) => setTimeout(r, ms)); return ms; }
        export function spin() { for (;;) {} }
        export function big() { return new Uint8Array(64 << 20).length; }
        export function heap() { const a: number[][] = []; for (let i = 0; i < 200; i++) a.push(new Array(100000).fill(i)); return a.length; }
        export async function out() { return (await fetch("http://127.0.0.1:9/")).status; }
    "#;
    assert_eq!(
        deploy(&a, "small", "f", json!({"code": code})).await.status,
        201
    );

    // Wall time: the tenant's 300 ms, not the server's default.
    let r = invoke(&a, "small", "f", "spin", Value::Null).await;
    assert_eq!(r.json()["kind"], "timeout", "{}", r.text());
    assert_eq!(r.json()["details"]["timeoutMs"], 300, "{}", r.text());
    // Memory: 16 MiB for buffers and the heap.
    let r = invoke(&a, "small", "f", "big", Value::Null).await;
    assert_eq!(r.json()["kind"], "memory_limit", "{}", r.text());
    let r = invoke(&a, "small", "f", "heap", Value::Null).await;
    assert_eq!(r.json()["kind"], "memory_limit", "{}", r.text());
    // Outbound: no host allowed.
    let r = invoke(&a, "small", "f", "out", Value::Null).await;
    assert_eq!(r.json()["kind"], "permission_denied", "{}", r.text());

    // Concurrency 1: a second call while one runs is turned away at once.
    let slow = invoke(&a, "small", "f", "sleep", json!(250));
    let second = async {
        tokio::time::sleep(Duration::from_millis(80)).await;
        invoke(&a, "small", "f", "sleep", json!(1)).await
    };
    let (first, second) = tokio::join!(slow, second);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(second.status, 429, "{}", second.text());
    assert_eq!(second.json()["kind"], "too_many_requests");
    assert!(second.header("retry-after").is_some());
    // Another tenant's calls are not held by this one's limit.
    let b = tenant(&s, "other", json!({}), json!(["deploy", "invoke"])).await;
    assert_eq!(
        deploy(&b, "other", "f", json!({"code": code})).await.status,
        201
    );
    let busy = invoke(&a, "small", "f", "sleep", json!(250));
    let other = async {
        tokio::time::sleep(Duration::from_millis(80)).await;
        invoke(&b, "other", "f", "sleep", json!(1)).await
    };
    let (_, other) = tokio::join!(busy, other);
    assert_eq!(other.status, 200, "{}", other.text());

    // A function may only lower its tenant's limits.
    let r = deploy(
        &a,
        "small",
        "g",
        json!({"code": code, "limits": {"timeoutMs": 5000}}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["details"]["field"], "limits.timeoutMs");
    let r = deploy(
        &a,
        "small",
        "g",
        json!({"code": code, "limits": {"timeoutMs": 100}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = invoke(&a, "small", "g", "spin", Value::Null).await;
    assert_eq!(r.json()["details"]["timeoutMs"], 100, "{}", r.text());

    // Calls per second: a token bucket.
    let r = op
        .send(
            "PATCH",
            "/tenants/other",
            json!({"limits": {"ratePerSecond": 1, "burst": 2}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(invoke(&b, "other", "f", "sleep", json!(0)).await.status);
    }
    assert_eq!(statuses, [200, 200, 429]);
    let r = op
        .send("PATCH", "/tenants/other", json!({"limits": {"bogus": 1}}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
}

#[tokio::test]
async fn secrets_reach_the_code_and_nothing_else() {
    let s = server();
    let a = tenant(&s, "vault", json!({}), json!(["deploy", "invoke"])).await;
    let code = r#"
        export function read() { return { token: Deno.env.get("TOKEN")?.length, shared: Deno.env.get("SHARED") }; }
        export function leak() { console.log("token is", Deno.env.get("TOKEN")); throw new Error("failed with " + Deno.env.get("TOKEN")); }
        export default { fetch(_req: Request, env: Record<string, string>) { return Response.json({ keys: Object.keys(env).sort(), len: env.TOKEN.length }); } };
    "#;
    assert_eq!(
        deploy(&a, "vault", "f", json!({"code": code})).await.status,
        201
    );
    let r = a
        .send(
            "PUT",
            "/tenants/vault/functions/f/secrets",
            json!({"TOKEN": "tok-5up3r-s3cr3t"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("5up3r"));
    let r = a
        .send(
            "PUT",
            "/tenants/vault/secrets",
            json!({"SHARED": "plain-shared"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = a
        .send("PUT", "/tenants/vault/secrets", json!({"1BAD": "x"}))
        .await;
    assert_eq!(r.status, 400);

    let r = invoke(&a, "vault", "f", "read", Value::Null).await;
    assert_eq!(
        r.json()["result"],
        json!({"token": 16, "shared": "plain-shared"}),
        "{}",
        r.text()
    );
    let key = format!("Bearer {}", a.key);
    let r = s
        .request("GET", "/t/vault/f", &[("authorization", key.as_str())], "")
        .await;
    assert_eq!(
        r.json(),
        json!({"keys": ["SHARED", "TOKEN"], "len": 16}),
        "{}",
        r.text()
    );

    // What the code prints or throws reaches nobody with the value in it.
    let r = invoke(&a, "vault", "f", "leak", Value::Null).await;
    assert_eq!(r.json()["kind"], "exception");
    assert!(!r.text().contains("5up3r"), "{}", r.text());
    assert!(r.text().contains("[secret TOKEN]"), "{}", r.text());
    for path in [
        "/tenants/vault/functions/f/secrets",
        "/tenants/vault/secrets",
        "/tenants/vault/functions/f",
        "/tenants/vault/functions/f/versions",
        "/tenants/vault/functions/f/logs",
        "/tenants/vault",
    ] {
        let r = a.send("GET", path, Value::Null).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(!r.text().contains("5up3r"), "{path}: {}", r.text());
    }
    let r = a
        .send(
            "DELETE",
            "/tenants/vault/functions/f/secrets/TOKEN",
            Value::Null,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = invoke(&a, "vault", "f", "read", Value::Null).await;
    assert_eq!(r.json()["result"]["token"], Value::Null, "{}", r.text());
}

#[tokio::test]
async fn usage_and_logs_are_counted_per_tenant_and_function() {
    let s = server();
    let a = tenant(
        &s,
        "meter",
        json!({"timeoutMs": 200}),
        json!(["deploy", "invoke"]),
    )
    .await;
    let code = r#"
        export function ok(i: number) { console.log("call", i); return i; }
        export function bad() { throw new TypeError("nope"); }
        export function spin() { for (;;) {} }
    "#;
    assert_eq!(
        deploy(&a, "meter", "m", json!({"code": code})).await.status,
        201
    );
    for i in 0..3 {
        assert_eq!(invoke(&a, "meter", "m", "ok", json!(i)).await.status, 200);
    }
    invoke(&a, "meter", "m", "bad", Value::Null).await;
    invoke(&a, "meter", "m", "spin", Value::Null).await;

    let r = a
        .send("GET", "/tenants/meter/usage?function=m", Value::Null)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let minutes = r.json()["usage"].as_array().unwrap().clone();
    let total = |k: &str| -> f64 { minutes.iter().map(|m| m[k].as_f64().unwrap_or(0.0)).sum() };
    assert_eq!(total("faas.invocations"), 5.0, "{}", r.text());
    assert_eq!(total("faas.errors"), 2.0);
    assert_eq!(total("faas.timeouts"), 1.0);
    // The spin ran for its 200 ms of wall time: its CPU time is counted
    // (how much of it depends on what else the machine runs).
    assert!(
        total("faas.cpu_usage") >= 20.0,
        "the spin used its CPU: {}",
        r.text()
    );
    assert!(total("faas.cpu_usage") <= total("faas.invoke_duration") + 5.0);
    assert!(total("faas.invoke_duration") >= 200.0);
    assert!(total("faas.mem_usage") > 0.0);
    let kinds: Vec<String> = minutes
        .iter()
        .flat_map(|m| {
            m["errorsByKind"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(kinds.contains(&"exception".to_string()) && kinds.contains(&"timeout".to_string()));

    let r = a
        .send(
            "GET",
            "/tenants/meter/functions/m/logs?limit=5",
            Value::Null,
        )
        .await;
    let calls = r.json()["invocations"].as_array().unwrap().clone();
    assert_eq!(calls.len(), 5, "{}", r.text());
    assert_eq!(calls[0]["outcome"], "timeout");
    assert_eq!(calls[1]["outcome"], "exception");
    assert_eq!(calls[2]["logs"][0]["message"], "call 2");
    assert_eq!(calls[2]["via"], "invoke");

    // Another tenant's usage is its own.
    let b = tenant(&s, "quiet", json!({}), json!(["invoke"])).await;
    let r = b.send("GET", "/tenants/quiet/usage", Value::Null).await;
    assert_eq!(r.json()["usage"], json!([]));
    let r = b.send("GET", "/tenants/meter/usage", Value::Null).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn every_replica_serves_every_function() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.url();
    let replica = |name: &str| {
        Server::start_with(&[
            ("DATABASE_URL", url.as_str()),
            ("REPLICA_ID", name),
            ("API_KEY", OPERATOR),
            ("POOL_SIZE", "1"),
        ])
    };
    let one = replica("one");
    let two = replica("two");
    let a1 = tenant(&one, "shared", json!({}), json!(["deploy", "invoke"])).await;
    let a2 = Client {
        s: &two,
        key: a1.key.clone(),
    };
    let r = deploy(&a1, "shared", "f", json!({"code": "export const v = () => 1; export default { fetch: () => new Response('one') }"})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = invoke(&a2, "shared", "f", "v", Value::Null).await;
    assert_eq!(r.json()["result"], 1, "{}", r.text());
    let key = format!("Bearer {}", a1.key);
    let r = two
        .request("GET", "/t/shared/f", &[("authorization", key.as_str())], "")
        .await;
    assert_eq!(r.text(), "one");
    // A new version deployed on one replica is what the other runs
    // (within its cache's two seconds).
    deploy(
        &a2,
        "shared",
        "f",
        json!({"code": "export const v = () => 2"}),
    )
    .await;
    let mut seen = Value::Null;
    for _ in 0..40 {
        seen = invoke(&a1, "shared", "f", "v", Value::Null).await.json()["result"].clone();
        if seen == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 2);
    // Usage written by both replicas adds up in the shared store.
    let r = a2
        .send("GET", "/tenants/shared/usage?function=f", Value::Null)
        .await;
    let _ = a1
        .send("GET", "/tenants/shared/usage?function=f", Value::Null)
        .await;
    let r2 = a2
        .send("GET", "/tenants/shared/usage?function=f", Value::Null)
        .await;
    let sum = |r: &Reply| -> u64 {
        r.json()["usage"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["faas.invocations"].as_u64().unwrap())
            .sum()
    };
    assert!(sum(&r2) >= sum(&r) && sum(&r2) >= 3, "{}", r2.text());
}

#[tokio::test]
async fn per_tenant_series_are_on_metrics_only_when_asked_for() {
    for on in [false, true] {
        let s = Server::start_with(&[
            ("API_KEY", OPERATOR),
            ("POOL_SIZE", "1"),
            ("TENANT_METRICS", if on { "true" } else { "false" }),
        ]);
        let a = tenant(&s, "counted", json!({}), json!(["deploy", "invoke"])).await;
        deploy(&a, "counted", "f", json!({"code": "export const f = () => 1; export const g = () => { throw new Error('x') }"})).await;
        invoke(&a, "counted", "f", "f", Value::Null).await;
        invoke(&a, "counted", "f", "f", Value::Null).await;
        invoke(&a, "counted", "f", "g", Value::Null).await;
        let r = operator(&s).send("GET", "/metrics", Value::Null).await;
        let text = r.text();
        let ok =
            r#"isoexec_function_invocations_total{tenant="counted",function="f",outcome="ok"} 2"#;
        let failed = r#"isoexec_function_invocations_total{tenant="counted",function="f",outcome="exception"} 1"#;
        assert_eq!(text.contains(ok), on, "{text}");
        assert_eq!(text.contains(failed), on);
        assert_eq!(
            text.contains("isoexec_function_cpu_seconds_total{tenant=\"counted\""),
            on
        );
        assert!(
            !text.contains("counted") || on,
            "no tenant names unless asked for"
        );
    }
}

#[tokio::test]
async fn what_a_tenant_stores_is_bounded() {
    let s = server();
    let a = tenant(&s, "hoarder", json!({}), json!(["deploy", "invoke"])).await;
    // Versions: the newest 50 are kept (and always the head).
    for v in 1..=53 {
        let r = deploy(
            &a,
            "hoarder",
            "f",
            json!({"code": format!("export const f = () => {v}")}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let r = a
        .send("GET", "/tenants/hoarder/functions/f/versions", Value::Null)
        .await;
    let versions = r.json()["versions"].as_array().unwrap().len();
    assert_eq!(versions, 50);
    let r = a
        .send(
            "GET",
            "/tenants/hoarder/functions/f/versions/3",
            Value::Null,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = a
        .send(
            "POST",
            "/tenants/hoarder/functions/f/rollback",
            json!({"version": 4}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        invoke(&a, "hoarder", "f", "f", Value::Null).await.json()["result"],
        4
    );

    // Invocation logs: the newest 100 per function.
    for _ in 0..105 {
        invoke(&a, "hoarder", "f", "f", Value::Null).await;
    }
    let r = a
        .send(
            "GET",
            "/tenants/hoarder/functions/f/logs?limit=100",
            Value::Null,
        )
        .await;
    assert_eq!(r.json()["invocations"].as_array().unwrap().len(), 100);
    let r = a
        .send(
            "GET",
            "/tenants/hoarder/functions/f/logs?limit=101",
            Value::Null,
        )
        .await;
    assert_eq!(r.status, 400);

    // Secrets: 100 per tenant and per function, each at most 64 KiB.
    let many: serde_json::Map<String, Value> =
        (0..101).map(|i| (format!("S{i}"), json!("v"))).collect();
    let r = a
        .send("PUT", "/tenants/hoarder/secrets", Value::Object(many))
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    for batch in 0..2 {
        let some: serde_json::Map<String, Value> = (0..50)
            .map(|i| (format!("S{batch}_{i}"), json!("v")))
            .collect();
        let r = a
            .send("PUT", "/tenants/hoarder/secrets", Value::Object(some))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = a
        .send("PUT", "/tenants/hoarder/secrets", json!({"ONE_MORE": "v"}))
        .await;
    assert_eq!(r.status, 507, "{}", r.text());
    let r = a
        .send(
            "PUT",
            "/tenants/hoarder/functions/f/secrets",
            json!({"BIG": "x".repeat(65 * 1024)}),
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn cpu_time_and_the_pools_share_are_the_tenants_own() {
    let s = Server::start_with(&[
        ("API_KEY", OPERATOR),
        ("POOL_SIZE", "2"),
        ("SCRIPT_THREADS", "2"),
    ]);
    let a = tenant(
        &s,
        "greedy",
        json!({"cpuMs": 100, "timeoutMs": 5000, "threads": 1, "concurrency": 4}),
        json!(["deploy", "invoke"]),
    )
    .await;
    let b = tenant(&s, "polite", json!({}), json!(["deploy", "invoke"])).await;
    let code = r#"
        export function spin() { for (;;) {} }
        export function busy(ms: number) { const end = Date.now() + ms; while (Date.now() < end) {} return ms; }
        export const quick = () => "quick";
    "#;
    assert_eq!(
        deploy(
            &a,
            "greedy",
            "f",
            json!({"code": code, "limits": {"cpuMs": 100}})
        )
        .await
        .status,
        201
    );
    assert_eq!(
        deploy(&b, "polite", "f", json!({"code": code}))
            .await
            .status,
        201
    );
    // CPU time: the tenant's 100 ms, well before its 5 s of wall time.
    let t = std::time::Instant::now();
    let r = invoke(&a, "greedy", "f", "spin", Value::Null).await;
    assert_eq!(r.json()["kind"], "cpu_limit", "{}", r.text());
    assert!(t.elapsed() < Duration::from_secs(3));

    // One isolate thread for the greedy tenant: its two busy calls run one
    // after the other, while the other tenant's call is not held up.
    let op = operator(&s);
    op.send(
        "PATCH",
        "/tenants/greedy",
        json!({"limits": {"threads": 1, "concurrency": 4}}),
    )
    .await;
    assert_eq!(
        deploy(&a, "greedy", "g", json!({"code": code}))
            .await
            .status,
        201
    );
    let started = std::time::Instant::now();
    let first = invoke(&a, "greedy", "g", "busy", json!(400));
    let second = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = invoke(&a, "greedy", "g", "busy", json!(400)).await;
        (r, started.elapsed())
    };
    let other = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = std::time::Instant::now();
        let r = invoke(&b, "polite", "f", "quick", Value::Null).await;
        (r, t.elapsed())
    };
    let (first, (second, second_done), (other, other_took)) = tokio::join!(first, second, other);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(second.status, 200, "{}", second.text());
    assert!(
        second_done >= Duration::from_millis(780),
        "the two calls overlapped: {second_done:?}"
    );
    assert_eq!(other.json()["result"], "quick");
    assert!(
        other_took < Duration::from_millis(350),
        "held up by another tenant: {other_took:?}"
    );
}

#[tokio::test]
async fn a_deploy_that_finds_the_queue_full_answers_overloaded() {
    let s = Server::start_with(&[
        ("API_KEY", OPERATOR),
        ("POOL_SIZE", "1"),
        ("QUEUE_SIZE", "0"),
    ]);
    let a = tenant(&s, "busy", json!({}), json!(["deploy", "invoke"])).await;
    let key = format!("Bearer {OPERATOR}");
    let auth = [("authorization", key.as_str())];
    let body = json!({"script": "export async function f() { await new Promise((r) => setTimeout(r, 800)); }", "fn": "f"});
    let hold = s.request("POST", "/run", &auth, body.to_string());
    let deploy_now = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        deploy(&a, "busy", "f", json!({"code": "export const f = () => 1"})).await
    };
    let (held, r) = tokio::join!(hold, deploy_now);
    assert_eq!(held.status, 200);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["kind"], "overloaded");
    assert!(r.header("retry-after").is_some());
    // Nothing was recorded: the function does not exist.
    let r = a
        .send("GET", "/tenants/busy/functions/f", Value::Null)
        .await;
    assert_eq!(r.status, 404);
}
