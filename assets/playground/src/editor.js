// The playground's editor: CodeMirror 6 with TypeScript or Python highlighting,
// bracket matching, undo, and diagnostics marked in place. Bundled into
// playground.js by scripts/build-playground.sh; the page uses it through
// window.IsoexecEditor.
import { EditorView, basicSetup } from "codemirror";
import { javascript } from "@codemirror/lang-javascript";
import { python } from "@codemirror/lang-python";
import { setDiagnostics, lintGutter } from "@codemirror/lint";
import { keymap } from "@codemirror/view";
import { Compartment, Prec } from "@codemirror/state";
import { oneDark } from "@codemirror/theme-one-dark";

/** Position of a 1-based line and 0-based column, clamped into the doc. */
function offset(doc, line, col) {
  const l = doc.line(Math.min(Math.max(1, line), doc.lines));
  return Math.min(l.from + Math.max(0, col), l.to);
}

function create(parent, text, onRun) {
  const run = Prec.highest(
    keymap.of([{ key: "Mod-Enter", run: () => { onRun(); return true; } }]),
  );
  // Light or dark, as the system says, and again when it changes.
  const theme = new Compartment();
  const language = new Compartment();
  const dark = window.matchMedia("(prefers-color-scheme: dark)");
  const view = new EditorView({
    doc: text,
    parent,
    extensions: [
      basicSetup,
      language.of(javascript({ typescript: true })),
      lintGutter(),
      run,
      theme.of(dark.matches ? oneDark : []),
    ],
  });
  dark.addEventListener("change", (e) =>
    view.dispatch({ effects: theme.reconfigure(e.matches ? oneDark : []) }),
  );
  return {
    view,
    getCode: () => view.state.doc.toString(),
    setCode: (code) =>
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: code } }),
    /**
     * Marks diagnostics: [{line, col, endLine, endCol, message, severity}],
     * lines 1-based, columns 0-based.
     */
    mark: (items) => {
      const doc = view.state.doc;
      const diagnostics = items.map((d) => {
        const from = offset(doc, d.line, d.col ?? 0);
        let to = offset(doc, d.endLine ?? d.line, d.endCol ?? (d.col ?? 0) + 1);
        if (to <= from) to = Math.min(doc.line(Math.min(d.line, doc.lines)).to, from + 1);
        if (to <= from) to = from;
        return { from, to, message: d.message, severity: d.severity ?? "error" };
      });
      view.dispatch(setDiagnostics(view.state, diagnostics));
    },
    clear: () => view.dispatch(setDiagnostics(view.state, [])),
    /** Highlights as "typescript" or "python". */
    setLanguage: (name) =>
      view.dispatch({
        effects: language.reconfigure(name === "python" ? python() : javascript({ typescript: true })),
      }),
    focus: () => view.focus(),
  };
}

window.IsoexecEditor = { create };
