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
