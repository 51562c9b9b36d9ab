//! Coming from the systems isoexec replaces: their settings' names read as
//! ours (units converted), and the defaults they have, available as
//! settings.

use serde_json::json;

use crate::support::Server;

#[tokio::test]
async fn their_setting_names_take_effect_in_our_units() {
    let s = Server::start_with(&[
        // The session executor's seconds, restexec's allow-list.
        ("EXECUTION_TIMEOUT", "1"),
        ("DENO_ALLOW_ENV", "MY_VAR"),
        ("MY_VAR", "from-the-environment"),
    ]);
    let env = s
        .call(
            "export const f = () => Deno.env.get('MY_VAR')",
            "f",
            json!({}),
        )
        .await;
    assert_eq!(env.json()["result"], "from-the-environment");
    let started = std::time::Instant::now();
    let looped = s
        .call("export function f() { for (;;) {} }", "f", json!({}))
        .await;
    assert_eq!(looped.json()["kind"], "timeout", "{}", looped.json());
    assert_eq!(looped.json()["details"]["timeoutMs"], 1000);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn default_isolation_and_environment_are_settings() {
    let s = Server::start_with(&[
        ("DEFAULT_ISOLATION", "none"),
        ("DEFAULT_ENVIRONMENT", "javascript"),
        ("POOL_SIZE", "1"),
    ]);
    // Calls that name no isolation share the warm isolate: state persists
    // (calls on one connection; each thread has its own warm isolates).
    let counter = "let n = 0; export function f() { n += 1; return n; }";
    let mut c = s.connect().await;
    let first = c.call(counter, "f", json!({})).await.json()["result"].clone();
    let second = c.call(counter, "f", json!({})).await.json()["result"].clone();
    assert_eq!((first, second), (json!(1), json!(2)));
    // Naming one still wins.
    let fresh = c.call(counter, "f", json!({"isolation": "isolate"})).await;
    assert_eq!(fresh.json()["result"], 1);
    // A session without an environment gets the default one.
    let created = s.post("/api/v1/sessions", &json!({})).await;
    assert_eq!(created.status, 200, "{}", created.json());
    assert_eq!(created.json()["environment"], "javascript");

    // Without the settings: a fresh isolate each call, and a clear 400.
    let plain = Server::start_with(&[("POOL_SIZE", "1")]);
    let a = plain.call(counter, "f", json!({})).await.json()["result"].clone();
    let b = plain.call(counter, "f", json!({})).await.json()["result"].clone();
    assert_eq!((a, b), (json!(1), json!(1)));
    let refused = plain.post("/api/v1/sessions", &json!({})).await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.json()["detail"]
            .as_str()
            .unwrap()
            .contains("DEFAULT_ENVIRONMENT")
    );
}

#[tokio::test]
async fn job_and_session_output_names_virtual_files_not_the_server_s_paths() {
    let s = Server::start();
    let thrower = "function boom() { throw new Error('boom'); }\nboom();";
    // A job: its program reads as /workspace/job.js.
    let job = s
        .post("/execute/code", &json!({"lang": "js", "code": thrower}))
        .await
        .json();
    let output = job["output"].as_str().unwrap();
    assert!(output.contains("Error: boom"), "{output}");
    assert!(output.contains("/workspace/job.js:"), "{output}");
    let workspace = s.workspace.display().to_string();
    assert!(!output.contains(&workspace), "{output}");
    assert!(!output.contains("__job_"), "{output}");

    // A script session and a notebook: their files read as /session/….
    for mode in ["script", "notebook"] {
        let id = s
            .post(
                "/api/v1/sessions",
                &json!({"environment": "typescript", "mode": mode}),
            )
            .await
            .json()["session_id"]
            .as_str()
            .unwrap()
            .to_string();
        let run = s
            .post(
                &format!("/api/v1/sessions/{id}/execute"),
                &json!({"code": "Deno.readTextFileSync('/etc/hostname')"}),
            )
            .await
            .json();
        let stderr = run["stderr"].as_str().unwrap();
        assert!(stderr.contains("PermissionDenied"), "{mode}: {run}");
        assert!(!stderr.contains("/sessions/"), "{mode}: {stderr}");
        let thrown = s
            .post(
                &format!("/api/v1/sessions/{id}/execute"),
                &json!({"code": "function f(): never { throw new Error('deep'); }\nf();"}),
            )
            .await
            .json();
        let stderr = thrown["stderr"].as_str().unwrap();
        assert!(stderr.contains("deep"), "{mode}: {thrown}");
        if mode == "script" {
            assert!(stderr.contains("file:///session/main.ts:"), "{stderr}");
        }
        assert!(!stderr.contains("/sessions/"), "{mode}: {stderr}");
    }
}
