//! TypeScript → JavaScript with `deno_ast`, on the calling thread. Only a
//! compile helper runs this (see [`super`]); everyone else asks a
//! [`super::Compiler`].

use deno_ast::diagnostics::Diagnostic as _;
use deno_ast::{
    EmitOptions, MediaType, ModuleSpecifier, ParseParams, SourceMapOption, TranspileModuleOptions,
    TranspileOptions,
};

/// A script that does not parse, with a 1-based position.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyntaxError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

/// Parses and transpiles `source`, known as `specifier` (its extension
/// picks the syntax; none means TypeScript), on the calling thread. Only a
/// compile helper calls this.
pub(crate) fn transpile_source(specifier: &str, source: &str) -> Result<String, SyntaxError> {
    let specifier = ModuleSpecifier::parse(specifier).map_err(|e| SyntaxError {
        message: format!("the module name '{specifier}' is not a URL: {e}"),
        line: 1,
        column: 1,
    })?;
    let media_type = match MediaType::from_specifier(&specifier) {
        MediaType::Unknown => MediaType::TypeScript,
        known => known,
    };
    let text = source.strip_prefix('\u{feff}').unwrap_or(source);
    let parsed = deno_ast::parse_module(ParseParams {
        specifier: specifier.clone(),
        text: text.into(),
        media_type,
        capture_tokens: false,
        scope_analysis: false,
        maybe_syntax: None,
    })
    .map_err(|d| syntax_error(&d))?;
    if let Some(d) = parsed.diagnostics().first() {
        return Err(syntax_error(d));
    }
    let emitted = parsed
        .transpile(
            &TranspileOptions {
                imports_not_used_as_values: deno_ast::ImportsNotUsedAsValues::Remove,
                decorators: deno_ast::DecoratorsTranspileOption::Ecma,
                ..Default::default()
            },
            &TranspileModuleOptions { module_kind: None },
            &EmitOptions {
                source_map: SourceMapOption::Inline,
                inline_sources: false,
                ..Default::default()
            },
        )
        .map_err(|e| match e {
            deno_ast::TranspileError::ParseErrors(errs) => match errs.0.first() {
                Some(d) => syntax_error(d),
                None => SyntaxError {
                    message: "the script does not parse".into(),
                    line: 1,
                    column: 1,
                },
            },
            other => SyntaxError {
                message: other.to_string(),
                line: 1,
                column: 1,
            },
        })?
        .into_source();
    Ok(emitted.text)
}

fn syntax_error(d: &deno_ast::ParseDiagnostic) -> SyntaxError {
    let pos = d.display_position();
    SyntaxError {
        message: d.message().to_string(),
        line: pos.line_number,
        column: pos.column_number,
    }
}
