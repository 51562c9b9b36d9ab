//! Code as users send it, whatever the API: its size cap, the
//! markdown-fence rules (a model's reply with the code in a fenced block
//! runs as the code in the block), and how the server's own directories
//! read in what the code printed (virtual names, never the server's paths).

/// Largest code any API accepts, in bytes (after fence extraction).
pub(crate) const MAX_CODE_BYTES: usize = 10 * 1024 * 1024;

/// Fence languages whose block is taken as the code.
const CODE_FENCES: [&str; 5] = ["", "ts", "typescript", "js", "javascript"];

/// The code to save from `text`: the body of its first closed code fence
/// (```` ```ts ````, ```` ```typescript ````, ```` ```js ````,
/// ```` ```javascript ```` or a bare ```` ``` ````), else the whole text.
/// Blocks fenced for other languages are skipped; an unclosed fence means
/// the text is not markdown, and all of it is kept.
pub(crate) fn extract_code(text: &str) -> &str {
    let mut offset = 0;
    let mut open: Option<(bool, usize)> = None;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim();
        let Some(rest) = trimmed.strip_prefix("```") else {
            continue;
        };
        match open {
            None => {
                let lang = rest.trim().to_ascii_lowercase();
                open = Some((CODE_FENCES.contains(&lang.as_str()), offset));
            }
            Some((wanted, body_start)) if rest.trim().is_empty() => {
                if wanted {
                    let body = &text[body_start..start];
                    return body
                        .strip_suffix('\n')
                        .map_or(body, |b| b.strip_suffix('\r').unwrap_or(b));
                }
                open = None;
            }
            Some(_) => {}
        }
    }
    text
}

/// Whether `text` is markdown whose first code fence is JSX (`tsx` or
/// `jsx`), which this server does not run: the message to give, if so.
pub(crate) fn jsx_fence(text: &str) -> Option<String> {
    let first = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("```"))?
        .trim()
        .to_ascii_lowercase();
    matches!(first.as_str(), "tsx" | "jsx").then(|| {
        format!(
            "The code is in a ```{first} block: JSX is not supported; send TypeScript (```ts) or \
             JavaScript (```js) without JSX"
        )
    })
}

/// `text` with the directory `dir` shown as `shown` (say `/session`):
/// stack traces name `file:///session/main.ts:1:7`, messages
/// `/session/data.txt`, never where the server keeps the files. `renames`
/// replaces whole file names first (a job's `__job_<id>.js` reads `job.js`).
pub(crate) fn with_virtual_paths(
    text: &str,
    dir: &std::path::Path,
    shown: &str,
    renames: &[(&str, &str)],
) -> String {
    let real = dir.display().to_string();
    if real.is_empty() || real == "/" || !text.contains(&real) {
        return text.to_string();
    }
    let mut out = text.to_string();
    for (from, to) in renames {
        out = out.replace(&format!("{real}/{from}"), &format!("{shown}/{to}"));
    }
    out.replace(&format!("{real}/"), &format!("{shown}/"))
        .replace(&real, shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_paths_read_as_virtual_ones() {
        let dir = std::path::Path::new("/var/lib/isoexec/data/sessions/0c6f");
        let text = "Uncaught Error: x\n    at file:///var/lib/isoexec/data/sessions/0c6f/main.ts:1:7\n\
                    Requires read access to /var/lib/isoexec/data/sessions/0c6f/../x";
        assert_eq!(
            with_virtual_paths(text, dir, "/session", &[]),
            "Uncaught Error: x\n    at file:///session/main.ts:1:7\nRequires read access to /session/../x"
        );
        let ws = std::path::Path::new("/srv/ws");
        assert_eq!(
            with_virtual_paths(
                "at file:///srv/ws/__job_9.js:2:3",
                ws,
                "/workspace",
                &[("__job_9.js", "job.js")]
            ),
            "at file:///workspace/job.js:2:3"
        );
        assert_eq!(
            with_virtual_paths("nothing here", ws, "/workspace", &[]),
            "nothing here"
        );
    }

    #[test]
    fn jsx_fences_are_named() {
        assert!(jsx_fence("Here:\n```tsx\nconst a = <b/>;\n```\n").is_some());
        assert!(jsx_fence("```ts\nconst a = 1;\n```").is_none());
        assert!(jsx_fence("const a = 1;").is_none());
    }

    #[test]
    fn the_first_closed_code_fence_is_taken() {
        let md = "Here you go:\n```ts\nconst a = 1;\nconsole.log(a);\n```\nand\n```js\nx\n```\n";
        assert_eq!(extract_code(md), "const a = 1;\nconsole.log(a);");
        let bare = "```\nlet x = 2;\n```";
        assert_eq!(extract_code(bare), "let x = 2;");
        let typescript = "```TypeScript\nlet y: number = 3;\n```";
        assert_eq!(extract_code(typescript), "let y: number = 3;");
    }

    #[test]
    fn other_languages_are_skipped_and_unclosed_fences_keep_everything() {
        let md = "```python\nprint(1)\n```\n```javascript\nconsole.log(1)\n```";
        assert_eq!(extract_code(md), "console.log(1)");
        let unclosed = "```ts\nconst a = 1;\n";
        assert_eq!(extract_code(unclosed), unclosed);
        let plain = "const a = `template`;\nconsole.log(a);\n";
        assert_eq!(extract_code(plain), plain);
    }
}
