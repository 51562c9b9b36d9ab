//! Node programs as graders and interview platforms write them, over real
//! HTTP: CommonJS detected as Node 22 does, `require` of the built-ins,
//! `process` and `Buffer`, stdin in each idiom, `node:` imports from ES
//! modules, and the hints an ES module gets for Node-only names. Expected
//! outputs are what Node 22 prints for the same programs and input.
//!
//! Bounds: the same as any program (timeout, memory, output caps, the
//! write quota); stdin is read once from the job's `stdin` (bounded by the
//! request body); `require` reads files through the program's read
//! permissions; nothing is fetched.

use serde_json::{Value, json};

use crate::support::Server;

async fn job(s: &Server, lang: &str, code: &str, stdin: &str) -> Value {
    let r = s
        .post(
            "/execute/code",
            &json!({"lang": lang, "code": code, "stdin": stdin}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

#[tokio::test]
async fn grader_programs_read_stdin_in_every_idiom_and_print_as_node_does() {
    let s = Server::start();
    let corpus: &[(&str, &str, &str, i64)] = &[
        (
            // The most common: all of stdin at once.
            "const lines = require('fs').readFileSync(0, 'utf8').trim().split('\\n');\n\
             const n = Number(lines[0]);\n\
             const xs = lines[1].split(' ').map(Number);\n\
             console.log(xs.slice(0, n).reduce((a, b) => a + b, 0));",
            "3\n1 2 3\n",
            "6\n",
            0,
        ),
        (
            "const input = require('fs').readFileSync('/dev/stdin').toString();\n\
             process.stdout.write(input.split('').reverse().join(''));",
            "abc",
            "cba",
            0,
        ),
        (
            // readline with line and close events.
            "const readline = require('readline');\n\
             const rl = readline.createInterface({ input: process.stdin, terminal: false });\n\
             const lines = [];\n\
             rl.on('line', (line) => lines.push(line));\n\
             rl.on('close', () => {\n\
               for (const l of lines) process.stdout.write(l.toUpperCase() + ' ');\n\
               process.stdout.write('\\n');\n\
             });",
            "a\nb\nc\n",
            "A B C \n",
            0,
        ),
        (
            // readline as an async iterator.
            "const rl = require('node:readline').createInterface({ input: process.stdin });\n\
             (async () => {\n\
               let sum = 0;\n\
               for await (const line of rl) sum += Number(line);\n\
               console.log('sum', sum);\n\
             })();",
            "1\n2\n3",
            "sum 6\n",
            0,
        ),
        (
            // process.stdin data and end events; exit code from process.exit.
            "let input = '';\n\
             process.stdin.setEncoding('utf8');\n\
             process.stdin.on('data', (c) => (input += c));\n\
             process.stdin.on('end', () => {\n\
               console.log(input.split(/\\s+/).filter(Boolean).length);\n\
               process.exit(2);\n\
             });",
            "x y z",
            "3\n",
            2,
        ),
        (
            // rl.question, classes, recursion, process.exitCode.
            "const rl = require('readline').createInterface({ input: process.stdin, output: process.stdout });\n\
             class Fib { at(n) { return n < 2 ? n : this.at(n - 1) + this.at(n - 2); } }\n\
             rl.question('n? ', (n) => {\n\
               console.log(new Fib().at(Number(n)));\n\
               rl.close();\n\
               process.exitCode = 3;\n\
             });",
            "10\n",
            "n? 55\n",
            3,
        ),
        (
            // Sloppy-mode CommonJS, module globals, Buffer, util, path, events.
            "total = 0;\n\
             for (const x of [1, 2, 3]) total += x;\n\
             const util = require('util');\n\
             const { EventEmitter } = require('events');\n\
             const e = new EventEmitter();\n\
             e.once('done', (v) => console.log(util.format('%s=%d', 'total', v)));\n\
             e.emit('done', total);\n\
             e.emit('done', 99);\n\
             console.log(typeof module, typeof exports, __filename, require('path').join('/a', 'b', '../c'));\n\
             console.log(Buffer.from('hi').toString('hex'), Buffer.from('aGk=', 'base64').toString());",
            "",
            "total=6\nobject object /workspace/job.js /a/c\n6869 hi\n",
            0,
        ),
    ];
    for (code, stdin, want, exit) in corpus {
        for lang in ["node", "js"] {
            let r = job(&s, lang, code, stdin).await;
            assert_eq!(r["output"], *want, "{lang}: {code}\n{r}");
            assert_eq!(r["exit_code"], *exit, "{lang}: {code}\n{r}");
        }
    }

    // Hashes as Node computes them.
    let r = job(
        &s,
        "node",
        "const c = require('crypto');\nfor (const h of ['md5', 'sha1', 'sha256']) console.log(c.createHash(h).update('abc').digest('hex'));\n\
         console.log(c.createHash('sha256').update('a'.repeat(1000)).digest('base64'));",
        "",
    )
    .await;
    assert_eq!(
        r["output"],
        "900150983cd24fb0d6963f7d28e17f72\na9993e364706816aba3e25717850c26c9cd0d89d\n\
         ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n\
         Qe3s5C1j6Nm/UVqbppMuHCDLyfWl0TRkWttdsblzfqM=\n",
        "{r}"
    );

    // An uncaught error reads as Node prints it: the line, a caret at the
    // throw, the stack without the host's frames, Node's version.
    let r = job(
        &s,
        "node",
        "const a = 1;\nfunction parse(s) {\n  throw new Error('bad input: ' + s);\n}\nparse('x');",
        "",
    )
    .await;
    assert_eq!(
        r["output"],
        "/workspace/job.js:3\n  throw new Error('bad input: ' + s);\n  ^\n\n\
         Error: bad input: x\n    at parse (/workspace/job.js:3:9)\n    \
         at Object.<anonymous> (/workspace/job.js:5:1)\n\nNode.js v22.12.0\n",
        "{r}"
    );
    assert_eq!(r["exit_code"], 1);

    // An assertion that fails ends the program with exit code 1, the
    // message where the grader reads it.
    let r = job(&s, "node", "require('assert').strictEqual(1 + 1, 3)", "").await;
    assert!(
        r["output"].as_str().unwrap().contains("AssertionError"),
        "{r}"
    );
    assert_eq!(r["exit_code"], 1);
    s.assert_healthy().await;
}

#[tokio::test]
async fn es_modules_import_node_built_ins_and_node_only_names_get_a_hint() {
    let s = Server::start();
    // `node:` and bare built-in names, from JavaScript and TypeScript.
    let r = job(
        &s,
        "js",
        "import { readFileSync } from 'node:fs';\nimport path from 'path';\n\
         console.log(readFileSync(0, 'utf8').trim().split('\\n').length, path.basename('/a/b.txt'));",
        "1\n2\n",
    )
    .await;
    assert_eq!(r["output"], "2 b.txt\n", "{r}");
    let r = job(
        &s,
        "ts",
        "import { EOL } from 'node:os';\nconst b: Buffer = Buffer.from('abc');\n\
         process.stdout.write(b.toString('base64') + EOL);",
        "",
    )
    .await;
    assert_eq!(r["output"], "YWJj\n", "{r}");
    // .mjs-style content (import) never sees require; TypeScript neither:
    // the hint says what to write instead, in the output users read.
    let r = job(&s, "ts", "const fs = require('fs');", "").await;
    let out = r["output"].as_str().unwrap();
    assert!(
        out.contains("ReferenceError: require is not defined"),
        "{out}"
    );
    assert!(
        out.contains("hint:") && out.contains("import fs from \"node:fs\""),
        "{out}"
    );
    assert_eq!(r["exit_code"], 1);
    s.assert_healthy().await;
}

#[tokio::test]
async fn node_programs_keep_every_limit() {
    let s = Server::start_with(&[
        ("ALLOW_ENV", "VISIBLE"),
        ("VISIBLE", "yes"),
        ("HIDDEN", "no"),
    ]);
    // Modules that would need processes, sockets or threads say so.
    for module in ["child_process", "net", "http", "worker_threads"] {
        let r = job(&s, "node", &format!("require('{module}')"), "").await;
        let out = r["output"].as_str().unwrap();
        assert!(
            out.contains(&format!("'{module}'")) && out.contains("without processes"),
            "{out}"
        );
        assert_eq!(r["exit_code"], 1);
    }
    // fs keeps the permission checks; a package that is not there says
    // that nothing is fetched.
    let r = job(
        &s,
        "node",
        "require('fs').readFileSync('/etc/passwd', 'utf8')",
        "",
    )
    .await;
    assert!(
        r["output"].as_str().unwrap().contains("PermissionDenied"),
        "{r}"
    );
    let r = job(&s, "node", "require('lodash')", "").await;
    assert!(
        r["output"]
            .as_str()
            .unwrap()
            .contains("Cannot find package 'lodash'"),
        "{r}"
    );
    assert!(
        r["output"].as_str().unwrap().contains("nothing is fetched"),
        "{r}"
    );
    // process.env shows only the allowed variables.
    let r = job(
        &s,
        "node",
        "console.log(process.env.VISIBLE, process.env.HIDDEN, Object.keys(process.env).includes('HIDDEN'))",
        "",
    )
    .await;
    assert_eq!(r["output"], "yes undefined false\n", "{r}");
    // Asking for a variable that is not there is no refused capability:
    // a later error is reported as itself.
    let r = job(
        &s,
        "node",
        "process.env.HOME;\nthrow new RangeError('own')",
        "",
    )
    .await;
    assert!(
        r["output"].as_str().unwrap().contains("RangeError: own"),
        "{r}"
    );
    // process.exit inside a callback ends the program with its code, and
    // what was written before it is kept.
    let r = job(
        &s,
        "node",
        "setTimeout(() => { process.stdout.write('partial'); process.exit(7); }, 1);\nsetTimeout(() => console.log('never'), 50);",
        "",
    )
    .await;
    assert_eq!(
        (r["output"].as_str(), r["exit_code"].as_i64()),
        (Some("partial"), Some(7)),
        "{r}"
    );
    // A loop still ends at its timeout.
    let r = s
        .post(
            "/execute/code",
            &json!({"lang": "node", "code": "while (true) {}", "timeout": 300}),
        )
        .await
        .json();
    assert_eq!(r["status"], "timeout", "{r}");
    s.assert_healthy().await;
}

#[tokio::test]
async fn node_sessions_require_their_own_files() {
    let s = Server::start();
    let r = s
        .post("/api/v1/sessions", &json!({"environment": "node"}))
        .await
        .json();
    let id = r["session_id"].as_str().unwrap().to_string();
    let exec = |body: Value| {
        let path = format!("/api/v1/sessions/{id}/execute");
        let s = &s;
        async move { s.post(&path, &body).await.json() }
    };
    let r =
        exec(json!({"code": "module.exports = { double: (x) => 2 * x };", "filename": "lib.js"}))
            .await;
    assert_eq!(r["exit_code"], 0, "{r}");
    let r = exec(json!({"code": "require('fs').writeFileSync('data.json', JSON.stringify({ n: 5 }))", "filename": "write.js"})).await;
    assert_eq!(r["exit_code"], 0, "{r}");
    let r = exec(json!({"code": "const { double } = require('./lib');\nconsole.log(double(21), require('./data.json').n)"})).await;
    assert_eq!(r["stdout"], "42 5\n", "{r}");
    // Outside the session: refused, as any read is.
    let r = exec(json!({"code": "require('../other/lib.js')"})).await;
    assert_eq!(r["exit_code"], 1, "{r}");
}

/// The vendor directory `tests/npm` (`npm ci` installs its packages), or
/// `None`, with a line saying why, when they are not installed.
fn npm_vendor() -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/npm");
    if dir.join("node_modules/zod/package.json").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("ISOEXEC_REQUIRE_NPM").is_none(),
        "tests/npm/node_modules is missing: run `(cd tests/npm && npm ci)`"
    );
    eprintln!("skipped: the npm packages are not installed (cd tests/npm && npm ci)");
    None
}

#[tokio::test]
async fn npm_packages_installed_in_vendor_dir_load_as_node_loads_them() {
    let Some(vendor) = npm_vendor() else { return };
    let s = Server::start_with(&[("VENDOR_DIR", vendor.to_str().unwrap())]);
    // require: CommonJS-only (ms), CommonJS with dependencies (fill-range →
    // to-regex-range → is-number), a dual package through its exports map's
    // "require" condition (zod).
    let r = job(
        &s,
        "node",
        "const ms = require('ms');\nconst fill = require('fill-range');\nconst { z } = require('zod');\n\
         console.log(ms('2 days'), fill(1, 3).join(','), z.string().safeParse(5).success);\n\
         console.log(require.resolve ? 'ok' : 'no', require('zod/package.json').name);",
        "",
    )
    .await;
    assert_eq!(r["output"], "172800000 1,2,3 false\nok zod\n", "{r}");
    // import: ESM-only with a dependency (p-limit → yocto-queue), CommonJS
    // from an ES module (default export), the dual package's "import"
    // condition, and npm: specifiers; from JavaScript and TypeScript jobs.
    let esm = "import ms from 'ms';\nimport pLimit from 'p-limit';\nimport { z } from 'zod';\n\
               import fill from 'npm:fill-range@7';\nconst limit = pLimit(1);\n\
               console.log(ms(60000), fill('a', 'c').join(''), z.number().parse(3), await limit(() => 42));";
    for lang in ["js", "ts"] {
        let r = job(&s, lang, esm, "").await;
        assert_eq!(r["output"], "1m abc 3 42\n", "{lang}: {r}");
    }
    // An ES-only package is not required, as in Node 22; a package that is
    // not installed says how to install it.
    let r = job(&s, "node", "require('p-limit')", "").await;
    assert!(
        r["output"]
            .as_str()
            .unwrap()
            .contains("require() of the ES module"),
        "{r}"
    );
    let r = job(&s, "node", "require('lodash')", "").await;
    let out = r["output"].as_str().unwrap();
    assert!(
        out.contains("Cannot find package 'lodash'") && out.contains("npm install --prefix"),
        "{out}"
    );
    let r = job(
        &s,
        "js",
        "import _ from 'lodash';\nconsole.log(typeof _);",
        "",
    )
    .await;
    assert!(
        r["output"]
            .as_str()
            .unwrap()
            .contains("npm install --prefix"),
        "{r}"
    );
    // Sessions and restexec's /execute run programs the same way.
    let id = s
        .post("/api/v1/sessions", &json!({"environment": "node"}))
        .await
        .json()["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .post(
            &format!("/api/v1/sessions/{id}/execute"),
            &json!({"code": "console.log(require('ms')(1000))"}),
        )
        .await
        .json();
    assert_eq!(r["stdout"], "1s\n", "{r}");
    s.save(
        "npm-prog",
        "import { z } from 'zod';\nconsole.log(JSON.stringify({ ok: z.boolean().parse(true) }));",
    )
    .await;
    let r = s.execute("npm-prog", json!({})).await.json();
    assert_eq!(r["result"], json!({"ok": true}), "{r}");
    // Notebooks: Node's REPL globals (require, process, Buffer) and imports
    // in a node notebook; imports in a TypeScript one.
    let notebook = |env: &'static str| {
        let s = &s;
        async move {
            s.post(
                "/api/v1/sessions",
                &json!({"environment": env, "mode": "notebook"}),
            )
            .await
            .json()["session_id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let cell = |id: String, code: &'static str| {
        let s = &s;
        async move {
            s.post(
                &format!("/api/v1/sessions/{id}/execute"),
                &json!({"code": code}),
            )
            .await
            .json()
        }
    };
    let id = notebook("node").await;
    let r = cell(
        id.clone(),
        "const ms = require('ms');\nprocess.stdout.write('partial ');\nms(5000)",
    )
    .await;
    assert_eq!(
        (r["stdout"].as_str(), r["result"].as_str()),
        (Some("partial "), Some("5s")),
        "{r}"
    );
    let r = cell(
        id,
        "const { z } = await import('zod');\n[typeof Buffer, z.number().parse(4)]",
    )
    .await;
    assert_eq!(r["result"], json!(["function", 4]), "{r}");
    let id = notebook("typescript").await;
    let r = cell(
        id,
        "import { z } from 'zod';\nconst n: number = z.number().parse(7);\nn * 6",
    )
    .await;
    assert_eq!(r["result"], 42, "{r}");
    // Function calls import ES-module packages; CommonJS ones need a
    // program's require, and say so.
    let r = s
        .call(
            "import { z } from 'zod';\nexport const f = (p: unknown) => z.string().safeParse(p).success;",
            "f",
            json!({"payload": "x"}),
        )
        .await;
    assert_eq!(r.json()["result"], true, "{:?}", r.json());
    let r = s
        .call(
            "import ms from 'ms';\nexport const f = () => ms(1000);",
            "f",
            json!({}),
        )
        .await;
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("not to function calls"),
        "{:?}",
        r.json()
    );
    s.assert_healthy().await;
}

#[tokio::test]
async fn packages_cannot_lead_outside_the_module_roots() {
    // A package of its own: named exports of a CommonJS file, and a
    // symlinked package that points outside every root.
    let vendor = crate::support::TempDir::new("npmvendor");
    let tiny = vendor.0.join("node_modules/tiny");
    std::fs::create_dir_all(&tiny).unwrap();
    std::fs::write(
        tiny.join("package.json"),
        r#"{"name": "tiny", "main": "lib.js"}"#,
    )
    .unwrap();
    std::fs::write(
        tiny.join("lib.js"),
        "exports.add = (a, b) => a + b;\nexports.name = 'tiny';\n",
    )
    .unwrap();
    let outside = crate::support::TempDir::new("npmoutside");
    std::fs::write(
        outside.0.join("package.json"),
        r#"{"name": "evil", "main": "index.js"}"#,
    )
    .unwrap();
    std::fs::write(outside.0.join("index.js"), "module.exports = 'escaped';\n").unwrap();
    std::os::unix::fs::symlink(&outside.0, vendor.0.join("node_modules/evil")).unwrap();
    let s = Server::start_with(&[("VENDOR_DIR", vendor.0.to_str().unwrap())]);
    let r = job(
        &s,
        "js",
        "import { add, name } from 'tiny';\nconsole.log(add(2, 3), name);",
        "",
    )
    .await;
    assert_eq!(r["output"], "5 tiny\n", "{r}");
    for (lang, code) in [
        ("node", "console.log(require('evil'))"),
        ("js", "import e from 'evil';\nconsole.log(e);"),
    ] {
        let r = job(&s, lang, code, "").await;
        let out = r["output"].as_str().unwrap();
        assert!(
            !out.contains("escaped") && out.contains("not allowed"),
            "{lang}: {out}"
        );
        assert_eq!(r["exit_code"], 1);
    }
    let r = job(&s, "node", "require('../../etc/passwd')", "").await;
    assert_eq!(r["exit_code"], 1, "{r}");
    assert!(!r["output"].as_str().unwrap().contains("root:"), "{r}");
}

#[test]
fn the_command_line_runs_node_programs_by_extension_or_flag() {
    use std::io::Write;
    let dir = crate::support::TempDir::new("nodecli");
    let run = |args: &[&std::ffi::OsStr], stdin: &str| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_isoexec"))
            .arg("run")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).to_string(),
            out.status.code(),
        )
    };
    let program = "const n = require('fs').readFileSync(0, 'utf8').trim().split('\\n').length;\n\
                   process.stdout.write(String(n));\nprocess.exitCode = n;\n";
    // A script without an extension runs as Node with --node; .cjs always.
    let script = dir.0.join("count");
    std::fs::write(&script, program).unwrap();
    assert_eq!(
        run(&["--node".as_ref(), script.as_os_str()], "a\nb\n"),
        ("2".to_string(), Some(2))
    );
    let cjs = dir.0.join("count.cjs");
    std::fs::write(&cjs, program).unwrap();
    assert_eq!(
        run(&[cjs.as_os_str()], "a\nb\nc\n"),
        ("3".to_string(), Some(3))
    );
    // .mjs is an ES module: require is not there, and the hint says so.
    let mjs = dir.0.join("count.mjs");
    std::fs::write(&mjs, program).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_isoexec"))
        .arg("run")
        .arg(&mjs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint:"));
}
