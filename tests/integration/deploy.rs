//! The deployment files, read against the real binary: every variable they
//! set is a real setting, every route they probe is served, ports, users,
//! signals and grace periods agree.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn known(var: &str) -> bool {
    isoexec::config::VARIABLES.contains(&var)
}

fn routes() -> Vec<&'static str> {
    isoexec::Router::new().patterns()
}

#[test]
fn the_kubernetes_manifests_match_the_binary() {
    let mut kinds = Vec::new();
    for file in ["configmap", "deployment", "service", "hpa", "pdb"] {
        let doc = yaml(&format!("deploy/k8s/{file}.yaml"));
        kinds.push(doc["kind"].as_str().unwrap().to_string());
    }
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget"
        ]
    );
    let config = yaml("deploy/k8s/configmap.yaml");
    let data: BTreeMap<String, String> = serde_yaml::from_value(config["data"].clone()).unwrap();
    for var in data.keys() {
        assert!(known(var), "the ConfigMap sets {var}, which is no setting");
    }
    // The values are valid settings too.
    let lookup = data.clone();
    let settings = isoexec::Config::from_source(&Default::default(), |k| lookup.get(k).cloned())
        .expect("the ConfigMap's values validate");
    let port: u16 = data["PORT"].parse().unwrap();
    assert_eq!(data["HOST"], "0.0.0.0", "a pod must listen beyond loopback");

    let deploy = yaml("deploy/k8s/deployment.yaml");
    let spec = &deploy["spec"]["template"]["spec"];
    let c = &spec["containers"][0];
    // The most memory these settings may take fits the pod's limit.
    let limit = c["resources"]["limits"]["memory"]
        .as_str()
        .unwrap_or_default();
    let limit_bytes: u64 = match limit.strip_suffix("Gi") {
        Some(g) => g.parse::<u64>().unwrap() << 30,
        None => limit
            .strip_suffix("Mi")
            .map_or(0, |m| m.parse::<u64>().unwrap() << 20),
    };
    assert!(
        settings.worst_memory_bytes() <= limit_bytes,
        "the settings may take {} MiB; the pod has {limit}",
        settings.worst_memory_bytes() >> 20
    );
    assert_eq!(c["args"][0], "serve");
    assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(port as u64));
    for probe in ["readinessProbe", "livenessProbe"] {
        let path = c[probe]["httpGet"]["path"].as_str().unwrap();
        assert!(
            routes().contains(&path),
            "{probe} probes {path}, which is not served"
        );
        assert_eq!(c[probe]["httpGet"]["port"], c["ports"][0]["name"]);
    }
    // Every variable is a setting, or one a setting's value refers to
    // (`$(POD_IP)` in ADVERTISE_URL).
    let values: String = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|e| e["value"].as_str())
        .collect();
    for env in c["env"].as_sequence().unwrap() {
        let name = env["name"].as_str().unwrap();
        assert!(
            known(name) || values.contains(&format!("$({name})")),
            "the Deployment sets {name}, which is no setting"
        );
    }
    // The shared store from the Secret, the pod's name as the replica's;
    // readiness follows the store, liveness does not.
    let env_of = |name: &str| {
        c["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .clone()
    };
    assert_eq!(
        env_of("DATABASE_URL")["valueFrom"]["secretKeyRef"]["key"],
        "database-url"
    );
    assert_eq!(
        env_of("REPLICA_ID")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        env_of("POD_IP")["valueFrom"]["fieldRef"]["fieldPath"],
        "status.podIP"
    );
    assert_eq!(
        env_of("ADVERTISE_URL")["value"],
        format!("http://$(POD_IP):{port}")
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health");
    // Draining takes up to 30 s: the grace period covers it.
    assert!(spec["terminationGracePeriodSeconds"].as_u64().unwrap() > 30);
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert!(c["resources"]["limits"]["memory"].is_string());
    // Writable mounts cover the directories the server writes.
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    for dir in [&data["WORKSPACE_DIR"], &data["DATA_DIR"]] {
        assert!(mounts.contains(&dir.as_str()), "{dir} is not writable");
    }
    // The Service and the budgets select the Deployment's pods.
    let labels = &deploy["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&yaml("deploy/k8s/service.yaml")["spec"]["selector"], labels);
    assert_eq!(
        &yaml("deploy/k8s/pdb.yaml")["spec"]["selector"]["matchLabels"],
        labels
    );
    assert_eq!(
        yaml("deploy/k8s/hpa.yaml")["spec"]["scaleTargetRef"]["name"],
        deploy["metadata"]["name"]
    );
    // The metrics annotation points at the real route.
    let path = deploy["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"]
        .as_str()
        .unwrap();
    assert!(routes().contains(&path));
}

#[test]
fn compose_and_the_dockerfile_match_the_binary() {
    let compose = yaml("compose.yaml");
    // Two replicas sharing one PostgreSQL, behind a proxy on port 3000.
    let mut urls = Vec::new();
    let mut names = Vec::new();
    for name in ["isoexec", "isoexec-2"] {
        let svc = &compose["services"][name];
        let env: BTreeMap<String, String> =
            serde_yaml::from_value(svc["environment"].clone()).unwrap();
        for var in env.keys() {
            assert!(known(var), "compose sets {var}, which is no setting");
        }
        urls.push(env["DATABASE_URL"].clone());
        names.push(env["REPLICA_ID"].clone());
        assert_eq!(svc["stop_signal"], "SIGTERM");
        let grace = svc["stop_grace_period"]
            .as_str()
            .unwrap()
            .trim_end_matches('s');
        assert!(grace.parse::<u64>().unwrap() > 30);
        assert!(urls[0].contains("@postgres:5432/"));
    }
    assert_eq!(urls[0], urls[1], "the replicas share one database");
    assert_ne!(names[0], names[1], "each replica has a name of its own");
    assert!(compose["services"]["postgres"]["image"].is_string());
    assert_eq!(compose["services"]["proxy"]["ports"][0], "3000:3000");
    let proxy = compose["configs"]["proxy"]["content"].as_str().unwrap();
    assert!(proxy.contains("server isoexec:3000;") && proxy.contains("server isoexec-2:3000;"));

    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(
        dockerfile.matches("FROM ").count() >= 2,
        "a multi-stage build"
    );
    let mut in_env = false;
    let mut vars = Vec::new();
    for line in dockerfile.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("ENV ") {
            in_env = true;
            vars.push(rest.split('=').next().unwrap().trim().to_string());
        } else if in_env && t.contains('=') {
            vars.push(t.split('=').next().unwrap().trim().to_string());
        }
        if !t.ends_with('\\') {
            in_env = t.starts_with("ENV ") && t.ends_with('\\');
        }
    }
    assert!(vars.len() >= 5, "{vars:?}");
    for var in &vars {
        assert!(known(var), "the Dockerfile sets {var}, which is no setting");
    }
    assert!(
        dockerfile.contains("USER isoexec"),
        "the image runs as a non-root user"
    );
    assert!(dockerfile.contains("--uid 10001"));
    assert!(dockerfile.contains("EXPOSE 3000"));
    assert!(dockerfile.contains("STOPSIGNAL SIGTERM"));
    assert!(dockerfile.contains(r#"CMD ["serve"]"#));
    // The entry point's subcommand exists.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_isoexec"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn the_license_matches_the_manifest() {
    let cargo = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(cargo.contains("license = \"MIT\""));
    let license = std::fs::read_to_string(root().join("LICENSE")).unwrap();
    assert!(license.starts_with("MIT License"));
}
