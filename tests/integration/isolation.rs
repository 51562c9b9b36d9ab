//! Isolation modes: clean state per call, warm reuse, no way to deno_core's
//! internals.

use serde_json::{Value, json};

use crate::support::{Server, TempDir};

const COUNTER: &str = r#"
    let calls = 0;
    export function f() {
        calls += 1;
        const g = globalThis as any;
        const before = g.leaked;
        g.leaked = "set";
        (Object.prototype as any).polluted = true;
        return { calls, before: before ?? null };
    }
"#;

#[tokio::test]
async fn isolate_mode_shows_nothing_from_earlier_calls() {
    let s = Server::start_with(&[("POOL_SIZE", "1")]);
    for _ in 0..3 {
        let r = s.call(COUNTER, "f", json!({})).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["result"], json!({"calls": 1, "before": null}));
    }
    // Another script does not see the globals or the prototype pollution.
    let probe = r#"
        export function f() {
            return {
                leaked: (globalThis as any).leaked ?? null,
                polluted: ({} as any).polluted ?? null,
            };
        }
    "#;
    let r = s.call(probe, "f", json!({"isolation": "isolate"})).await;
    assert_eq!(
        r.json()["result"],
        json!({"leaked": null, "polluted": null})
    );
}

#[tokio::test]
async fn none_mode_reuses_a_warm_isolate_and_cancels_leftover_timers() {
    let s = Server::start_with(&[("POOL_SIZE", "1")]);
    // One keep-alive connection: its calls share the thread that serves it.
    let mut c = s.connect().await;
    let r1 = c.call(COUNTER, "f", json!({"isolation": "none"})).await;
    let r2 = c.call(COUNTER, "f", json!({"isolation": "none"})).await;
    assert_eq!(r1.json()["result"], json!({"calls": 1, "before": null}));
    assert_eq!(r2.json()["result"], json!({"calls": 2, "before": "set"}));

    // A timer left pending by one call never fires (or logs) in a later one.
    let leaves_timer = r#"
        export function f() {
            setTimeout(() => console.log("late"), 30);
            return "armed";
        }
    "#;
    let r = c
        .call(leaves_timer, "f", json!({"isolation": "none"}))
        .await;
    assert_eq!(r.json()["result"], "armed");
    let waits = r#"
        export async function f() {
            await new Promise((r) => setTimeout(r, 80));
            return "waited";
        }
    "#;
    let r = c.call(waits, "f", json!({"isolation": "none"})).await;
    assert_eq!(r.json()["result"], "waited");
    assert_eq!(r.json()["logs"], json!([]));
    // The timers were cancelled, not the isolate replaced: state lives on.
    let r3 = c.call(COUNTER, "f", json!({"isolation": "none"})).await;
    assert_eq!(r3.json()["result"], json!({"calls": 3, "before": "set"}));

    // Work the host cannot cancel (an `Atomics.waitAsync` still waiting)
    // leaves the runtime not quiet after the call: it is given up, and the
    // next call starts in a fresh one.
    let leaves_wait = r#"
        export function f() {
            const cell = new Int32Array(new SharedArrayBuffer(16));
            (Atomics as any).waitAsync(cell, 0, 0, 50).value.then(() => {});
            return "waiting";
        }
    "#;
    let r = c.call(leaves_wait, "f", json!({"isolation": "none"})).await;
    assert_eq!(r.json()["result"], "waiting");
    let r4 = c.call(COUNTER, "f", json!({"isolation": "none"})).await;
    assert_eq!(r4.json()["result"], json!({"calls": 1, "before": null}));
}

#[tokio::test]
async fn a_failed_warm_call_does_not_leave_its_state_behind() {
    let s = Server::start_with(&[("POOL_SIZE", "1")]);
    let poisons = r#"
        export function f() {
            (globalThis as any).half = "done";
            while (true) {}
        }
    "#;
    let r = s
        .call(poisons, "f", json!({"isolation": "none", "timeout": 100}))
        .await;
    assert_eq!(r.json()["kind"], "timeout");
    let probe = "export const f = () => (globalThis as any).half ?? null;";
    let r = s.call(probe, "f", json!({"isolation": "none"})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"], json!(null));
}

#[tokio::test]
async fn unknown_isolation_modes_are_refused() {
    let s = Server::start();
    let r = s
        .call("export const f = () => 1", "f", json!({"isolation": "vm"}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["kind"], "bad_request");
}

#[tokio::test]
async fn deno_core_internals_are_out_of_reach() {
    let s = Server::start();
    let pid = s.pid();
    let script = r#"
        export function f() {
            const g = globalThis as any;
            g.__bootstrap?.core?.ops?.op_panic?.("x");
            g.Deno?.core?.ops?.op_panic?.("x");
            g.Deno?.core?.print?.("leak\n");
            let viaFunction = "none";
            try {
                const root = (function () { return this; }).constructor("return this")();
                viaFunction = typeof root.__bootstrap + "/" + typeof root.Deno?.core;
            } catch (e) {
                viaFunction = "threw";
            }
            return {
                bootstrap: typeof g.__bootstrap,
                core: typeof g.Deno?.core,
                viaFunction,
            };
        }
    "#;
    let r = s.call(script, "f", json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(
        r.json()["result"],
        json!({"bootstrap": "undefined", "core": "undefined", "viaFunction": "undefined/undefined"})
    );
    assert_eq!(s.pid(), pid);
    let r = s
        .call("export const f = () => 'alive'", "f", json!({}))
        .await;
    assert_eq!(r.json()["result"], "alive");
    s.assert_healthy().await;
}

/// Leaves every kind of trace a call can leave behind, then ends the way
/// `mode` says: normally, by an exception, in a loop killed at its deadline,
/// or out of memory. A trace the mode refuses (`"frozen"` freezes built-ins)
/// is counted in `refused` instead.
const PLANTER: &str = r#"
    const g = globalThis as any;
    let count = 0;
    export function plant(mode: string) {
        count += 1;
        let refused = 0;
        const attempt = (f: () => void) => { try { f(); } catch { refused += 1; } };
        g.leaked = "global";
        attempt(() => { (Array.prototype as any).leakedMethod = () => "proto"; });
        attempt(() => Object.defineProperty(Object.prototype, "hidden", {
            value: "hidden", enumerable: false, configurable: true,
        }));
        attempt(() => { Object.getPrototypeOf(function* () {}).leakedGen = 1; });
        attempt(() => { Math.random = () => 4; });
        attempt(() => { (console as any).leakedConsole = 1; });
        g[Symbol.for("isoexec.trace")] = "registry";
        g.URL = "patched";
        delete g.TextEncoder;
        // Deleted and defined again as it was: only its place among the
        // global's keys tells.
        const decoder = Object.getOwnPropertyDescriptor(g, "TextDecoder")!;
        delete g.TextDecoder;
        Object.defineProperty(g, "TextDecoder", decoder);
        // A stack kept in the global object's hidden slot, and then any
        // value written there through the `stack` accessor's setter.
        attempt(() => {
            Error.captureStackTrace(g);
            Object.getOwnPropertyDescriptor(g, "stack")!.set!.call(g, "hidden " + mode);
        });
        attempt(() => Object.setPrototypeOf(g, { fromProto: "proto of global" }));
        /secret-(\w+)/.exec("secret-abc");
        console.count("k");
        console.group();
        setTimeout(() => console.log("late timer"), 20);
        setInterval(() => console.log("late interval"), 5);
        queueMicrotask(() => { g.fromMicrotask = true; });
        new Promise((r) => setTimeout(r, 40)).then(() => {
            g.settledLate = true;
            console.log("late settle");
        });
        new Promise(() => {});
        const registry = new FinalizationRegistry(() => console.log("finalizer"));
        for (let i = 0; i < 1000; i++) registry.register({ i }, i);
        g.ref = new WeakRef({ kept: true });
        g.registry = registry;
        console.log("planted");
        if (mode === "throw") throw new Error("boom");
        if (mode === "loop") while (true) {}
        if (mode === "bomb") {
            const hoard: number[][] = [];
            while (true) hoard.push(new Array(1 << 16).fill(count));
        }
        return { planted: true, refused };
    }
    export async function probe() {
        const lastMatch = (RegExp as any).$1;
        // Long enough for every timer the planter armed to have fired.
        const timer = setTimeout(() => {}, 0);
        await new Promise((r) => setTimeout(r, 80));
        console.count("k");
        return {
            count,
            leaked: g.leaked ?? null,
            arrayMethod: typeof (Array.prototype as any).leakedMethod,
            hidden: ({} as any).hidden ?? null,
            generator: Object.getPrototypeOf(function* () {}).leakedGen ?? null,
            registry: g[Symbol.for("isoexec.trace")] ?? null,
            random: Math.random() === 4,
            console: (console as any).leakedConsole ?? null,
            url: typeof URL,
            encoder: typeof TextEncoder,
            keyOrder: Reflect.ownKeys(g).indexOf("TextDecoder") - Reflect.ownKeys(g).indexOf("TextEncoder"),
            hiddenStack: Object.getOwnPropertyDescriptor(new Error(), "stack")?.get?.call(g) ?? null,
            fromProto: g.fromProto ?? null,
            lastMatch,
            timer,
            fromMicrotask: g.fromMicrotask ?? null,
            settledLate: g.settledLate ?? null,
            ref: typeof g.ref,
            finalizers: typeof g.registry,
        };
    }
"#;

/// `isoexec_isolates_created_total` from `/metrics`.
async fn isolates_created(s: &Server) -> u64 {
    s.metric("isoexec_isolates_created_total").await as u64
}

#[tokio::test]
async fn nothing_of_one_call_reaches_the_next_however_it_ended() {
    let s = Server::start_with(&[("POOL_SIZE", "1"), ("MEMORY_LIMIT_MB", "32")]);
    // One keep-alive connection: its calls share the thread that serves it.
    let mut c = s.connect().await;
    // The same probe as another script: a different module, cached apart.
    let other = format!("// another script\n{PLANTER}");
    let clean = json!({
        "count": 0, "leaked": null, "arrayMethod": "undefined", "hidden": null,
        "generator": null, "registry": null, "random": false, "console": null,
        "url": "function", "encoder": "function", "keyOrder": 1, "hiddenStack": null, "fromProto": null, "lastMatch": "",
        "timer": 1, "fromMicrotask": null, "settledLate": null, "ref": "undefined",
        "finalizers": "undefined",
    });
    let endings = [
        ("normal", None),
        ("throw", Some("exception")),
        ("loop", Some("timeout")),
        ("bomb", Some("memory_limit")),
    ];
    let cases = ["isolate", "frozen", "process"]
        .into_iter()
        .flat_map(|i| endings.map(|(mode, kind)| (i, mode, kind)));
    for (isolation, mode, kind) in cases {
        if isolation == "frozen" {
            // Settles the thread: the frozen isolate exists and no spare is
            // being made while the count is read.
            let r = c
                .call(
                    "export const f = () => 1",
                    "f",
                    json!({"isolation": "frozen"}),
                )
                .await;
            assert_eq!(r.json()["result"], 1);
        }
        let before = isolates_created(&s).await;
        let r = c
            .call(
                PLANTER,
                "plant",
                json!({"payload": mode, "isolation": isolation, "timeout": 300}),
            )
            .await;
        let body = r.json();
        match kind {
            None => {
                assert_eq!(body["result"]["planted"], true, "{body}");
                // "frozen" refuses the five changes to built-ins and a
                // stack recorded on the global object; the others take
                // them and must still not show them later.
                let refused = if isolation == "frozen" { 6 } else { 0 };
                assert_eq!(body["result"]["refused"], refused, "{isolation}: {body}");
            }
            Some(kind) => assert_eq!(body["kind"], kind, "{isolation} {mode}: {body}"),
        }
        for script in [PLANTER, other.as_str()] {
            let r = c
                .call(script, "probe", json!({"isolation": isolation}))
                .await;
            let body = r.json();
            assert_eq!(r.status, 200, "{isolation} after {mode}: {body}");
            assert_eq!(body["result"], clean, "{isolation} after {mode}: {body}");
            // No output of the planter arrives late in a later call, and
            // the console's counters and groups start anew.
            let logs: Vec<&str> = body["logs"]
                .as_array()
                .map(|a| a.iter().filter_map(|l| l["message"].as_str()).collect())
                .unwrap_or_default();
            assert_eq!(logs, ["k: 1"], "{isolation} after {mode}: {body}");
        }
        if isolation == "frozen" && (mode == "normal" || mode == "throw") {
            // The planter and both probes ran in one kept isolate: the test
            // exercised the reset, not a fresh isolate.
            assert_eq!(
                isolates_created(&s).await,
                before,
                "a frozen isolate was replaced"
            );
        }
    }
}

#[tokio::test]
async fn frozen_mode_refuses_changes_to_built_ins_but_not_to_user_objects() {
    let s = Server::start_with(&[("POOL_SIZE", "1")]);
    let frozen = json!({"isolation": "frozen"});
    let r = s
        .call(
            "export function f() { (Array.prototype as any).x = 1; }",
            "f",
            frozen.clone(),
        )
        .await;
    let body = r.json();
    assert_eq!(body["kind"], "exception", "{body}");
    let message = body["details"]["message"].as_str().unwrap_or("");
    assert!(message.contains("\"frozen\" isolation"), "{body}");

    // What ordinary code assigns on its own objects still works, although
    // the frozen prototypes have properties of those names.
    let script = r#"
        class NotFound extends Error {
            constructor(what: string) { super(what + " not found"); this.name = "NotFound"; }
        }
        function Legacy(this: any) {}
        Legacy.prototype = { greet() { return "hi"; } };
        Legacy.prototype.constructor = Legacy;
        export function f() {
            const o: any = {};
            o.toString = () => "custom";
            const e = new NotFound("x");
            return {
                name: e.name,
                text: String(e),
                custom: String(o),
                legacy: new (Legacy as any)().constructor === Legacy,
                frozen: Object.isFrozen(Object.prototype) && Object.isFrozen(console),
            };
        }
    "#;
    let r = s.call(script, "f", frozen.clone()).await;
    assert_eq!(
        r.json()["result"],
        json!({"name": "NotFound", "text": "NotFound: x not found", "custom": "custom",
               "legacy": true, "frozen": true}),
        "{:?}",
        r.json()
    );

    // A global the reset cannot remove retires the isolate; the next call
    // starts clean.
    let stuck = r#"
        export function f() {
            Object.defineProperty(globalThis, "stuck", { value: 1, configurable: false });
            return 1;
        }
        export const probe = () => typeof (globalThis as any).stuck;
    "#;
    // On one keep-alive connection: both calls on the isolates of the
    // thread that serves it, where the reset is done after the answer.
    let mut c = s.connect().await;
    for _ in 0..2 {
        let r = c.call(stuck, "f", frozen.clone()).await;
        assert_eq!(r.json()["result"], 1, "{}", r.text());
        let r = c.call(stuck, "probe", frozen.clone()).await;
        assert_eq!(r.json()["result"], "undefined", "{}", r.text());
    }
}

/// Each way a call can change the global object, one per call, and what
/// the next call on the same isolate sees of it: the global's own keys in
/// order, each with its kind, type and attributes, and its prototype. The
/// reset after a call that changed no global skips reading the properties
/// back (the host notes every set, definition and deletion, and checks the
/// enumerable keys for what V8 adds without telling it): here every change
/// is the only one its call makes, and none may be missed.
const GLOBAL_CHANGES: &str = r#"
    const g = globalThis as any;
    class Returns { constructor(o: any) { return o; } }
    class FieldOnGlobal extends Returns { Deno = "field"; }
    const changes: Record<string, () => void> = {
        assign: () => { g.URL = 1; },
        assignByName: () => { (0, eval)("URL = 2"); },
        sloppyThis: () => { Function("this.atob = 3")(); },
        sloppyImplicit: () => { Function("implicitGlobal = 4")(); },
        reflectSet: () => { Reflect.set(g, "fetch", 5); },
        objectAssign: () => { Object.assign(g, { crypto: 6 }); },
        attributesOnly: () => { Object.defineProperty(g, "btoa", { enumerable: true }); },
        readOnly: () => { Object.defineProperty(g, "Headers", { writable: false }); },
        accessor: () => { Object.defineProperty(g, "Request", { get: () => 7 }); },
        defineProperties: () => { Object.defineProperties(g, { Response: { value: 8 } }); },
        hiddenAddition: () => { Object.defineProperty(g, "hiddenNew", { value: 9, configurable: true }); },
        symbolAddition: () => { g[Symbol.for("isoexec.leak")] = 10; },
        hiddenSymbol: () => { Object.defineProperty(g, Symbol.iterator, { value: 11, configurable: true }); },
        deletion: () => { delete g.structuredClone; },
        reflectDelete: () => { Reflect.deleteProperty(g, "performance"); },
        reorder: () => {
            const d = Object.getOwnPropertyDescriptor(g, "TextDecoder")!;
            delete g.TextDecoder;
            Object.defineProperty(g, "TextDecoder", d);
        },
        // Before a key the reset cannot delete and define again: the
        // isolate is replaced instead.
        reorderEarly: () => {
            const d = Object.getOwnPropertyDescriptor(g, "Math")!;
            delete g.Math;
            Object.defineProperty(g, "Math", d);
        },
        evalVar: () => { (0, eval)("var evalVar;"); },
        evalFunction: () => { (0, eval)("function setTimeout() {}"); },
        classField: () => { new FieldOnGlobal(g); },
        element: () => { g[0] = 12; },
        hiddenElement: () => { Object.defineProperty(g, 1, { value: 13, configurable: true }); },
        arrayPush: () => { Array.prototype.push.call(g, 14); },
        prototype: () => { Object.setPrototypeOf(g, { fromProto: 15 }); },
        protoSetter: () => { g.__proto__ = { fromProto: 16 }; },
    };
    export function change(name: string) {
        changes[name]();
        return name;
    }
    export function look() {
        const keys = Reflect.ownKeys(g).map((k) => {
            const d = Object.getOwnPropertyDescriptor(g, k)!;
            const kind = "value" in d ? typeof d.value : "accessor";
            return `${String(k)}:${kind}${d.writable ? "w" : ""}${d.enumerable ? "e" : ""}${d.configurable ? "c" : ""}`;
        });
        const proto = Object.getPrototypeOf(g);
        return { keys: keys.join(" "), proto: Reflect.ownKeys(proto).map(String).join(" ") };
    }
"#;

#[tokio::test]
async fn frozen_reset_undoes_each_kind_of_change_to_the_global_object() {
    let s = Server::start_with(&[("POOL_SIZE", "1")]);
    let frozen = json!({"isolation": "frozen"});
    // One keep-alive connection: every call on the same frozen isolate.
    let mut c = s.connect().await;
    let clean = c.call(GLOBAL_CHANGES, "look", frozen.clone()).await.json();
    assert!(
        clean["result"]["keys"]
            .as_str()
            .is_some_and(|k| k.contains("URL:functionwc")),
        "{clean}"
    );
    let before = isolates_created(&s).await;
    let names = [
        "assign",
        "assignByName",
        "sloppyThis",
        "sloppyImplicit",
        "reflectSet",
        "objectAssign",
        "attributesOnly",
        "readOnly",
        "accessor",
        "defineProperties",
        "hiddenAddition",
        "symbolAddition",
        "hiddenSymbol",
        "deletion",
        "reflectDelete",
        "reorder",
        "evalVar",
        "evalFunction",
        "classField",
        "element",
        "hiddenElement",
        "arrayPush",
        "prototype",
        "protoSetter",
    ];
    for name in names {
        let r = c
            .call(
                GLOBAL_CHANGES,
                "change",
                json!({"isolation": "frozen", "payload": name}),
            )
            .await;
        assert_eq!(r.json()["result"], name, "{name}: {}", r.text());
        let after = c.call(GLOBAL_CHANGES, "look", frozen.clone()).await.json();
        assert_eq!(after["result"], clean["result"], "after {name}");
    }
    // Each was undone in place: the isolate was kept throughout.
    assert_eq!(isolates_created(&s).await, before);
    let r = c
        .call(
            GLOBAL_CHANGES,
            "change",
            json!({"isolation": "frozen", "payload": "reorderEarly"}),
        )
        .await;
    assert_eq!(r.json()["result"], "reorderEarly", "{}", r.text());
    let after = c.call(GLOBAL_CHANGES, "look", frozen.clone()).await.json();
    assert_eq!(after["result"], clean["result"], "after reorderEarly");
}

#[tokio::test]
async fn frozen_calls_get_new_instances_of_imported_modules() {
    let tools = TempDir::new("frozen-tools");
    std::fs::write(
        tools.0.join("counter.ts"),
        "let n = 0;\nexport function inc() { return ++n; }\n",
    )
    .unwrap();
    let dir = tools.0.display().to_string();
    let s = Server::start_with(&[("POOL_SIZE", "1"), ("TOOLS_DIR", &dir)]);
    // One keep-alive connection: its calls share the thread that serves it.
    let mut c = s.connect().await;
    let script = format!(
        "import {{ inc }} from 'file://{dir}/counter.ts';\n\
         export const f = () => ({{ n: inc(), url: import.meta.url.includes('#') }});"
    );
    // The control: a warm isolate keeps the imported module's state.
    let counts: Vec<Value> = {
        let mut v = Vec::new();
        for _ in 0..2 {
            let r = c.call(&script, "f", json!({"isolation": "none"})).await;
            v.push(r.json()["result"]["n"].clone());
        }
        v
    };
    assert_eq!(counts, [json!(1), json!(2)]);
    for _ in 0..3 {
        let r = c.call(&script, "f", json!({"isolation": "frozen"})).await;
        assert_eq!(
            r.json()["result"],
            json!({"n": 1, "url": true}),
            "{:?}",
            r.json()
        );
    }
    // A script whose text never says `import` (its instances are made
    // without the module loader) importing at run time all the same.
    let hidden = format!(
        "export async function f() {{\n\
           const m = await eval('imp' + 'ort(\"file://{dir}/counter.ts\")');\n\
           return m.inc();\n\
         }}"
    );
    for _ in 0..3 {
        let r = c.call(&hidden, "f", json!({"isolation": "frozen"})).await;
        assert_eq!(r.json()["result"], 1, "{}", r.text());
    }
    // The same through a function made from text (no direct `eval`, so
    // from its second call the script's instances come from its factory).
    let made = format!(
        "export async function f() {{\n\
           const load = new Function('return imp' + 'ort(\"file://{dir}/counter.ts\")');\n\
           const m = await load();\n\
           return m.inc();\n\
         }}"
    );
    for _ in 0..4 {
        let r = c.call(&made, "f", json!({"isolation": "frozen"})).await;
        assert_eq!(r.json()["result"], 1, "{}", r.text());
    }
}

/// A frozen call of a script that imports nothing gets its module instance
/// from V8 directly, not through the module loader; it must behave as a
/// loaded one: state of its own, its top level run (microtasks too) before
/// the call, a throw at its top level an exception, a script with
/// top-level await still served, and no isolate made for its calls beyond
/// the one that serves them (its instances are not kept).
#[tokio::test]
async fn frozen_instances_of_self_contained_scripts_behave_as_loaded_ones() {
    let s = Server::start_with(&[("POOL_SIZE", "1")]);
    let mut c = s.connect().await;
    let frozen = || json!({"isolation": "frozen"});
    let state = "let n = 0;\n\
                 let ready = false;\n\
                 Promise.resolve().then(() => { ready = true; });\n\
                 export function f() { n++; return { n, ready }; }";
    for _ in 0..3 {
        let r = c.call(state, "f", frozen()).await;
        assert_eq!(
            r.json()["result"],
            json!({"n": 1, "ready": true}),
            "{}",
            r.text()
        );
    }
    let created = isolates_created(&s).await;
    for _ in 0..1100 {
        let r = c.call(state, "f", frozen()).await;
        assert_eq!(r.json()["result"]["n"], 1, "{}", r.text());
    }
    // Past the thousand module instances after which a frozen isolate
    // whose instances the module map keeps is replaced.
    assert_eq!(isolates_created(&s).await, created);

    let throws = "throw new RangeError('at the top');\nexport const f = () => 1;";
    for _ in 0..2 {
        let r = c.call(throws, "f", frozen()).await;
        let body = r.json();
        assert_eq!(body["kind"], "exception", "{body}");
        assert_eq!(body["error"], "RangeError: at the top", "{body}");
    }
    let awaits = "const v = await Promise.resolve(41);\nexport const f = () => v + 1;";
    for _ in 0..2 {
        let r = c.call(awaits, "f", frozen()).await;
        assert_eq!(r.json()["result"], 42, "{}", r.text());
    }
    // The first script again, after a failure: still served, still fresh.
    let r = c.call(state, "f", frozen()).await;
    assert_eq!(
        r.json()["result"],
        json!({"n": 1, "ready": true}),
        "{}",
        r.text()
    );
}

/// A frozen call's instance of a script answers as a module instance made
/// for that call alone (`"isolate"`): top-level `this`, declarations that
/// stay out of the global object, exports renamed and live, strict code,
/// and the same positions in stack traces, on the first call and later.
#[tokio::test]
async fn frozen_instances_read_their_script_as_module_code() {
    let s = Server::start_with(&[("POOL_SIZE", "1")]);
    let mut c = s.connect().await;
    let probe = "var declared = 1;\n\
                 let count = 0;\n\
                 const self = this;\n\
                 class K { static tag = 'k'; }\n\
                 function bump(): number { return ++count; }\n\
                 export { bump as next, count as seen, K };\n\
                 export let live = 0;\n\
                 export function f() {\n\
                   live++;\n\
                   const g = globalThis as any;\n\
                   return {\n\
                     self: self === undefined,\n\
                     declared: typeof g.declared, bump: typeof g.bump, live,\n\
                     first: bump(), second: bump(), tag: K.tag,\n\
                     sloppy: (function (this: unknown) { return this; })() !== undefined,\n\
                   };\n\
                 }\n\
                 export function thrower(x: number) { if (x > 0) throw new TypeError('at ' + x); }";
    // The reply to a call of `f` in `isolation`.
    let mut ask = async |f: &str, isolation: &str, payload: Value| {
        c.call(
            probe,
            f,
            json!({"isolation": isolation, "payload": payload}),
        )
        .await
        .json()
    };
    let fresh = ask("f", "isolate", Value::Null).await;
    assert_eq!(fresh["result"]["first"], 1, "{fresh}");
    assert_eq!(fresh["result"]["declared"], "undefined", "{fresh}");
    let fresh_throw = ask("thrower", "isolate", json!(3)).await;
    assert_eq!(fresh_throw["kind"], "exception", "{fresh_throw}");
    let stack = fresh_throw["details"]["stack"].as_str().unwrap_or("");
    assert!(stack.contains(".ts:18:"), "{fresh_throw}");
    for _ in 0..3 {
        let r = ask("f", "frozen", Value::Null).await;
        assert_eq!(r["result"], fresh["result"], "{r}");
        let r = ask("thrower", "frozen", json!(3)).await;
        assert_eq!(r["details"], fresh_throw["details"], "{r}");
    }
    // A missing export is told with the exports there are.
    let r = ask("nope", "frozen", Value::Null).await;
    let missing = ask("nope", "isolate", Value::Null).await;
    assert_eq!(r["error"], missing["error"], "{r}");
    // A script that reads `arguments` is served too (as a module).
    let args = "export function f(...xs: number[]) { return arguments.length + xs.length; }";
    let r = c
        .call(args, "f", json!({"isolation": "frozen", "payload": 1}))
        .await
        .json();
    assert_eq!(r["result"], 2, "{r}");
}

/// A warm isolate is kept while its heap stays under half the memory limit,
/// and replaced once a call leaves it over: a call that fills the heap is
/// measured, however many short calls came before. The bound used after
/// short calls (no heap reading) must never keep an isolate that holds
/// more.
#[tokio::test]
async fn a_warm_isolate_over_its_heap_bound_is_replaced() {
    // The bound: half of 128 MiB.
    let s = Server::start_with(&[("MEMORY_LIMIT_MB", "128")]);
    // One keep-alive connection, and no other: its calls run on the thread
    // that serves it, in the one isolate kept there.
    let mut c = s.connect().await;
    let script = "let n = 0; const held = [];\n\
                  export function f(mb) {\n\
                    n++;\n\
                    const a = [];\n\
                    for (let i = 0; i < mb * 131072; i++) a.push(i + 0.5);\n\
                    held.push(a);\n\
                    return n;\n\
                  }";
    let mut result = async |mb: u32| {
        let r = c
            .call(script, "f", json!({"payload": mb, "isolation": "none"}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["result"].as_u64().unwrap_or(0)
    };
    // Short calls, many of them: the heap is not read after most.
    for i in 1..=50 {
        assert_eq!(result(0).await, i);
    }
    // 8 MiB held: under the bound, the isolate is kept.
    assert_eq!(result(8).await, 51);
    assert_eq!(result(0).await, 52);
    // 60 MiB more: over the bound after this call, which still answers.
    assert_eq!(result(60).await, 53);
    // The next calls start in a new isolate, kept in turn.
    assert_eq!(result(0).await, 1);
    assert_eq!(result(0).await, 2);
}
