//! `deno_lint` with its recommended rules, reported in the shape of
//! `deno lint --json`.

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::Path;

use deno_ast::diagnostics::Diagnostic as _;
use deno_ast::{MediaType, ModuleSpecifier, SourcePos};
use deno_lint::linter::{LintConfig, LintFileOptions, Linter, LinterOptions};
use deno_lint::rules::{get_all_rules, recommended_rules};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    /// 1-based.
    pub line: usize,
    /// 0-based, in characters.
    pub col: usize,
    pub byte_pos: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Range {
    pub start: Position,
    pub end: Position,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LintDiagnostic {
    /// The file as a `file://` URL.
    pub filename: String,
    pub range: Option<Range>,
    pub message: String,
    pub code: String,
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LintError {
    pub file_path: String,
    pub message: String,
}

/// The report: `deno lint --json`'s fields, with `checked_files` also
/// under the name `checkedFiles`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LintReport {
    pub version: u8,
    pub diagnostics: Vec<LintDiagnostic>,
    pub errors: Vec<LintError>,
    #[serde(rename = "checkedFiles")]
    pub checked_files_camel: Vec<String>,
    pub checked_files: Vec<String>,
    /// Diagnostics left out past `MAX_DIAGNOSTICS` (absent when none were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics_omitted: Option<usize>,
}

/// Most diagnostics (and parse errors) a report lists: a file of `debugger;`
/// lines could otherwise make a reply many times the file's size.
pub(super) const MAX_DIAGNOSTICS: usize = 1000;

/// The linter, built once; it is `Send + Sync`.
pub(super) struct Lint {
    linter: Linter,
}

impl Default for Lint {
    fn default() -> Self {
        Lint::new()
    }
}

impl Lint {
    pub(super) fn new() -> Lint {
        let all_rule_codes: HashSet<Cow<'static, str>> = get_all_rules()
            .iter()
            .map(|r| Cow::Borrowed(r.code()))
            .collect();
        Lint {
            linter: Linter::new(LinterOptions {
                rules: recommended_rules(get_all_rules()),
                all_rule_codes,
                custom_ignore_file_directive: None,
                custom_ignore_diagnostic_directive: None,
            }),
        }
    }

    /// Lints `source`, the text of the file at `path` (absolute).
    pub(super) fn lint(&self, path: &Path, source: &str) -> LintReport {
        let shown = path.display().to_string();
        let mut report = LintReport {
            version: 1,
            diagnostics: Vec::new(),
            errors: Vec::new(),
            checked_files_camel: vec![shown.clone()],
            checked_files: vec![shown.clone()],
            diagnostics_omitted: None,
        };
        let Ok(specifier) = ModuleSpecifier::from_file_path(path) else {
            report.errors.push(LintError {
                file_path: shown,
                message: "the path is not absolute".into(),
            });
            return report;
        };
        let media_type = match MediaType::from_specifier(&specifier) {
            MediaType::Unknown => MediaType::TypeScript,
            known => known,
        };
        let linted = self.linter.lint_file(LintFileOptions {
            specifier: specifier.clone(),
            source_code: source.to_string(),
            media_type,
            config: LintConfig {
                default_jsx_factory: None,
                default_jsx_fragment_factory: None,
            },
            external_linter: None,
        });
        let (parsed, diagnostics) = match linted {
            Ok(x) => x,
            Err(e) => {
                report.errors.push(LintError {
                    file_path: shown,
                    message: e.to_string(),
                });
                return report;
            }
        };
        for d in parsed.diagnostics().iter().take(MAX_DIAGNOSTICS) {
            report.errors.push(LintError {
                file_path: shown.clone(),
                message: d.to_string(),
            });
        }
        if diagnostics.len() > MAX_DIAGNOSTICS {
            report.diagnostics_omitted = Some(diagnostics.len() - MAX_DIAGNOSTICS);
        }
        for d in diagnostics.iter().take(MAX_DIAGNOSTICS) {
            let range = d.range.as_ref().map(|r| {
                let base = r.text_info.range().start;
                let at = |pos: SourcePos| {
                    let lc = r.text_info.line_and_column_index(pos);
                    Position {
                        line: lc.line_index + 1,
                        col: lc.column_index,
                        byte_pos: pos.as_byte_index(base),
                    }
                };
                Range {
                    start: at(r.range.start),
                    end: at(r.range.end),
                }
            });
            report.diagnostics.push(LintDiagnostic {
                filename: d.specifier.to_string(),
                range,
                message: d.message().to_string(),
                code: d.code().to_string(),
                hint: d.hint().map(|h| h.to_string()),
            });
        }
        report.diagnostics.sort_by(|a, b| {
            let key = |d: &LintDiagnostic| {
                d.range
                    .as_ref()
                    .map_or((usize::MAX, usize::MAX), |r| (r.start.line, r.start.col))
            };
            a.filename.cmp(&b.filename).then(key(a).cmp(&key(b)))
        });
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unused_variable_is_reported_with_its_range() {
        let lint = Lint::new();
        let r = lint.lint(Path::new("/w/a.ts"), "const unused = 1;\nconsole.log(2);\n");
        let d = r
            .diagnostics
            .iter()
            .find(|d| d.code == "no-unused-vars")
            .expect("no-unused-vars");
        let range = d.range.as_ref().unwrap();
        assert_eq!(
            range.start,
            Position {
                line: 1,
                col: 6,
                byte_pos: 6
            }
        );
        assert_eq!(
            range.end,
            Position {
                line: 1,
                col: 12,
                byte_pos: 12
            }
        );
        assert_eq!(d.filename, "file:///w/a.ts");
        assert!(r.errors.is_empty());
        assert_eq!(r.checked_files, vec!["/w/a.ts"]);
    }

    #[test]
    fn a_parse_error_is_in_errors() {
        let r = Lint::new().lint(Path::new("/w/b.ts"), "const = ;");
        assert!(r.diagnostics.is_empty());
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].file_path, "/w/b.ts");
    }
}
