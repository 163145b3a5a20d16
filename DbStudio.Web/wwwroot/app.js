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
