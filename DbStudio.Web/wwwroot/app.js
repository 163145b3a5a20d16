// Small browser helpers for the panel.
window.dbstudio = {
  copy: async (text) => { await navigator.clipboard.writeText(text); return true; },
};
window.dbstudio.download = (fileName, text, type) => {
  const url = URL.createObjectURL(new Blob([text], { type: type || 'text/csv;charset=utf-8' }));
  const a = document.createElement('a');
  a.href = url; a.download = fileName; document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
};
// A cell editor as it opens: focused with its text selected, so typing replaces it; Tab is the grid's (next cell), not the page's.
window.dbstudio.focusEditor = (el) => {
  if (!el || !el.focus) return;
  el.focus();
  try { if (el.select) el.select(); } catch { /* date pickers have no selection */ }
  if (!el.dataset.gridKeys) {
    el.dataset.gridKeys = '1';
    el.addEventListener('keydown', e => { if (e.key === 'Tab') e.preventDefault(); });
  }
};
// The Data tab's table and filter in the address bar (shareable), without a navigation.
window.dbstudio.replaceUrl = (url) => history.replaceState(history.state, '', url);
// The SQL tab's editor: one Monaco editor per component, created through that circuit's own JS runtime (the handle
// returned is an object reference of that circuit) and disposed with its component, model included. Ctrl+Enter
// (Cmd+Enter on a Mac) asks the component to run.
window.dbstudio.sqlEditor = async (host, value, component) => {
  // Monaco's AMD bundle may still be loading when the first tab opens: wait for its module rather than fail.
  if (typeof monaco === 'undefined') await new Promise((resolve, reject) => require(['vs/editor/editor.main'], resolve, reject));
  const editor = monaco.editor.create(host, {
    value: value || '', language: 'sql', automaticLayout: true, minimap: { enabled: false }, lineNumbers: 'on',
    scrollBeyondLastLine: false, fontSize: 13, tabSize: 2,
  });
  editor.addCommand(monaco.KeyMod.CtrlCmd | monaco.KeyCode.Enter, () => component.invokeMethodAsync('RunFromEditor'));
  host.dbstudioEditor = editor; // what a test drives
  let marks = [];
  return {
    // UTF-8 bytes: the component asks for a stream (IJSStreamReference), which Blazor makes of a typed array — any length.
    getValue: () => new TextEncoder().encode(editor.getValue()),
    setValue: (text) => editor.setValue(text ?? ''),
    // Underlines one character (line and column from 1), or clears the mark.
    mark: (line, column) => {
      marks = editor.deltaDecorations(marks, line > 0 ? [{
        range: new monaco.Range(line, column, line, column + 1),
        options: { inlineClassName: 'sql-error-mark', className: 'sql-error-mark' },
      }] : []);
    },
    dispose: () => {
      const model = editor.getModel();
      editor.dispose();
      if (model) model.dispose();
      delete host.dbstudioEditor;
    },
  };
};
