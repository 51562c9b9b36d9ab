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
            "cba\n",
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
            .contains("Cannot find module 'lodash'"),
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
        (Some("partial\n"), Some(7)),
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
