//! A self-contained module as the body of a function that makes a new
//! instance of it each time it is called, for `"frozen"` calls (see
//! `Sandbox::factory_instance`).
//!
//! Each instance of a module V8 makes starts its functions with no type
//! feedback and no optimized code, so a frozen call runs its code cold
//! even when V8 shares the compiled bytecode. Closures made by one
//! function, called again and again, share their feedback and optimized
//! code, and still get new bindings each time. So a module that imports
//! nothing, awaits nothing at its top level and exports only declarations
//! and local names becomes that function's body: `export` is blanked out
//! where it stands (every other character keeps its line and column, so
//! stack traces and the source map still fit) and a `return` of an object
//! with a getter per export is added after the last line. Anything else
//! about the module makes it keep the module way.
//!
//! Strict code in a function body reads as module code does, but for
//! `arguments` at the top level (the function's own there), what a direct
//! `eval` sees (that `arguments`, `new.target`), HTML-like comments
//! (comments in a script, operators in a module) and top-level `await`: a
//! module with any of these (`arguments` and the comments anywhere in its
//! text) is not made a body.

use deno_ast::swc::ast::{
    ArrowExpr, AwaitExpr, CallExpr, Callee, Decl, ExportSpecifier, Expr, ForOfStmt, Function,
    ModuleDecl, ModuleExportName, ModuleItem, Pat, UsingDecl,
};
use deno_ast::swc::common::Spanned;
use deno_ast::swc::ecma_visit::{Visit, VisitWith};
use deno_ast::{MediaType, ModuleSpecifier, ParseParams};

/// The text before a factory's body: a line of its own, which the script's
/// origin takes back (line offset -1), so the body's lines are the
/// module's.
pub(crate) const FACTORY_HEAD: &str = "(function () { \"use strict\";\n";

/// The script that evaluates to the factory of `code`, emitted JavaScript
/// of a module, or `None` if the module cannot be one (see the module
/// documentation).
pub(crate) fn factory_source(code: &str) -> Option<String> {
    // `arguments` anywhere, even in a string that may reach `eval`.
    let refused = ["import", "arguments", "<!--", "-->"];
    if refused.iter().any(|word| code.contains(word)) {
        return None;
    }
    let specifier = ModuleSpecifier::parse("file:///factory.js").ok()?;
    let parsed = deno_ast::parse_module(ParseParams {
        specifier,
        text: code.into(),
        media_type: MediaType::JavaScript,
        capture_tokens: false,
        scope_analysis: false,
        maybe_syntax: None,
    })
    .ok()?;
    if !parsed.diagnostics().is_empty() {
        return None;
    }
    let program = parsed.program();
    let module = program.as_module()?;
    let mut seen = Seen::default();
    module.visit_with(&mut seen);
    if seen.top_level_await || seen.direct_eval {
        return None;
    }
    // (exported name, local name), and the byte ranges to blank.
    let mut exports: Vec<(String, String)> = Vec::new();
    let mut blank: Vec<(usize, usize)> = Vec::new();
    for item in &module.body {
        let ModuleItem::ModuleDecl(decl) = item else {
            continue;
        };
        match decl {
            ModuleDecl::ExportDecl(export) => {
                let names: Vec<String> = match &export.decl {
                    Decl::Fn(f) => vec![f.ident.sym.to_string()],
                    Decl::Class(c) => vec![c.ident.sym.to_string()],
                    Decl::Var(v) => v
                        .decls
                        .iter()
                        .map(|d| match &d.name {
                            Pat::Ident(binding) => Some(binding.id.sym.to_string()),
                            _ => None,
                        })
                        .collect::<Option<_>>()?,
                    _ => return None,
                };
                let range = (offset(export.span.lo)?, offset(export.decl.span().lo)?);
                // Exactly the keyword (and the space after it) goes.
                if code.get(range.0..range.1)?.trim_end() != "export" {
                    return None;
                }
                exports.extend(names.into_iter().map(|n| (n.clone(), n)));
                blank.push(range);
            }
            ModuleDecl::ExportNamed(named) if named.src.is_none() && !named.type_only => {
                for specifier in &named.specifiers {
                    let ExportSpecifier::Named(s) = specifier else {
                        return None;
                    };
                    if s.is_type_only {
                        continue;
                    }
                    let ModuleExportName::Ident(local) = &s.orig else {
                        return None;
                    };
                    let exported = match &s.exported {
                        None => local.sym.to_string(),
                        Some(ModuleExportName::Ident(e)) => e.sym.to_string(),
                        Some(ModuleExportName::Str(_)) => return None,
                    };
                    exports.push((exported, local.sym.to_string()));
                }
                let range = (offset(named.span.lo)?, offset(named.span.hi)?);
                if !code.get(range.0..range.1)?.starts_with("export") {
                    return None;
                }
                blank.push(range);
            }
            _ => return None,
        }
    }
    let mut body = code.as_bytes().to_vec();
    for (from, to) in blank {
        for b in body.get_mut(from..to)? {
            match *b {
                b'\n' | b'\r' => {}
                // A character of more than one byte would move the columns
                // after it (V8 counts UTF-16 units).
                0x80.. => return None,
                _ => *b = b' ',
            }
        }
    }
    let body = String::from_utf8(body).ok()?;
    // Namespace order: by name.
    exports.sort();
    let mut out = String::with_capacity(FACTORY_HEAD.len() + body.len() + 64 * exports.len());
    out.push_str(FACTORY_HEAD);
    out.push_str(&body);
    // A new line ends a last line comment; the `;` a last statement.
    out.push_str("\n;return { __proto__: null");
    for (exported, local) in &exports {
        let key = serde_json::to_string(exported).ok()?;
        out.push_str(&format!(", get {key}() {{ return {local}; }}"));
    }
    out.push_str(" };\n})");
    Some(out)
}

/// A span's position as a byte offset into the parsed text (deno_ast
/// starts positions at 1).
fn offset(pos: deno_ast::swc::common::BytePos) -> Option<usize> {
    (pos.0 as usize).checked_sub(1)
}

/// What of the module's code keeps it from being a function body: a
/// top-level `await`, and a direct `eval` (whose code would see the
/// function's scope: its `arguments`, `new.target`).
#[derive(Default)]
struct Seen {
    /// Functions (arrows included) the visit is inside.
    depth: usize,
    top_level_await: bool,
    direct_eval: bool,
}

impl Visit for Seen {
    fn visit_function(&mut self, f: &Function) {
        self.depth += 1;
        f.visit_children_with(self);
        self.depth -= 1;
    }

    fn visit_arrow_expr(&mut self, a: &ArrowExpr) {
        self.depth += 1;
        a.visit_children_with(self);
        self.depth -= 1;
    }

    fn visit_await_expr(&mut self, a: &AwaitExpr) {
        self.top_level_await |= self.depth == 0;
        a.visit_children_with(self);
    }

    fn visit_for_of_stmt(&mut self, f: &ForOfStmt) {
        self.top_level_await |= f.is_await && self.depth == 0;
        f.visit_children_with(self);
    }

    fn visit_using_decl(&mut self, u: &UsingDecl) {
        self.top_level_await |= u.is_await && self.depth == 0;
        u.visit_children_with(self);
    }

    /// `eval(…)` and `(eval)(…)` are direct evals.
    fn visit_call_expr(&mut self, c: &CallExpr) {
        if let Callee::Expr(callee) = &c.callee {
            let mut callee: &Expr = callee;
            while let Expr::Paren(p) = callee {
                callee = &p.expr;
            }
            self.direct_eval |= matches!(callee, Expr::Ident(i) if &*i.sym == "eval");
        }
        c.visit_children_with(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: &str) -> Option<String> {
        factory_source(code).map(|s| s.strip_prefix(FACTORY_HEAD).expect("the head").to_string())
    }

    #[test]
    fn exports_are_blanked_in_place_and_returned_through_getters() {
        let code = "let n = 0;\nexport function f() { return ++n; }\nexport const a = 1, b = 2;\n\
                    class C {}\nexport { C as Z, n };\n";
        let got = body(code).unwrap();
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines[0], "let n = 0;");
        assert_eq!(lines[1], "       function f() { return ++n; }");
        assert_eq!(lines[2], "       const a = 1, b = 2;");
        assert_eq!(lines[4].trim(), "");
        assert_eq!(lines[4].len(), "export { C as Z, n };".len());
        assert_eq!(lines[5], "");
        assert_eq!(
            lines[6],
            ";return { __proto__: null, get \"Z\"() { return C; }, get \"a\"() { return a; }, \
             get \"b\"() { return b; }, get \"f\"() { return f; }, get \"n\"() { return n; } };"
        );
        assert_eq!(lines[7], "})");
    }

    #[test]
    fn async_functions_and_classes_keep_what_precedes_their_name() {
        let got = body("export async function f() { await 1; }\nexport class K {}\n").unwrap();
        assert!(got.starts_with("       async function f()"), "{got}");
        assert!(got.contains("\n       class K {}"), "{got}");
    }

    #[test]
    fn modules_a_function_body_would_read_otherwise_keep_the_module_way() {
        for code in [
            // Imports, static or dynamic, and import.meta.
            "import { x } from './x.js';\nexport const f = () => x;",
            "export const f = () => import('./x.js');",
            "export const f = () => import.meta.url;",
            // Re-exports load other modules.
            "export * from './x.js';",
            "export { x } from './x.js';",
            // Default exports, string names, patterns.
            "export default function f() {}",
            "export default 1;",
            "const a = 1;\nexport { a as 'a b' };",
            "export const { a } = { a: 1 };",
            // Top-level await in its forms.
            "await 1;\nexport const f = () => 1;",
            "for await (const x of []) {}\nexport const f = () => 1;",
            // `arguments`, even where only `eval` would read it, and
            // HTML-like comments (operators in a module).
            "export function f() { return arguments.length; }",
            "const s = 'arguments';\nexport const f = () => s;",
            // A direct eval, which would see the function's scope.
            "export const f = () => 1;\neval('argu' + 'ments');",
            "export const f = () => (eval)('new.target');",
            "export const f = (x) => x<!--x;",
            "export const f = (x) => x-->0;",
            // A module that does not parse.
            "export const = ;",
        ] {
            assert_eq!(factory_source(code), None, "{code}");
        }
    }

    #[test]
    fn awaits_inside_functions_and_indirect_evals_are_fine() {
        for code in [
            "export async function f() { await 1; }",
            "export const f = async () => { for await (const x of []) {} };",
            "export const f = async function () { return await 2; };",
            // An indirect eval runs in the global scope, as from a module.
            "export const f = () => (0, eval)('1 + 1');",
        ] {
            assert!(factory_source(code).is_some(), "{code}");
        }
    }

    #[test]
    fn a_module_without_exports_returns_an_empty_object() {
        let got = body("console.log(1)").unwrap();
        assert!(got.ends_with("\n;return { __proto__: null };\n})"), "{got}");
    }
}
