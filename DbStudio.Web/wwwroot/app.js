// Small browser helpers for the panel.
window.dbstudio = {
  copy: async (text) => { await navigator.clipboard.writeText(text); return true; },
};
