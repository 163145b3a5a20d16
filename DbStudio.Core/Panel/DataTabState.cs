// The Data tab's state, without markup: the page shown (paging, sort, filter), the selected rows, the cell being
// edited, the insert form, and the live merge of the table's changes from anywhere. DataTab.razor renders it and
// forwards clicks; tests drive it without a browser.
using System.Text.Json;
using DbStudio.Core.Auth;
using DbStudio.Core.Catalog;
using DbStudio.Core.Platform;
using DbStudio.Core.Rest;
using DbStudio.Core.Streams;

namespace DbStudio.Core.Panel;

/// <summary>What the Data tab reads and writes: TableBrowser, or a stand-in in tests.</summary>
public interface ITableData
{
    Task<DataPage?> PageAsync(string projectId, string table, int page, string? orderBy = null, bool descending = false,
        CancellationToken ct = default, DataFilter? filter = null, RestCaller? caller = null);
    Task<DataPage?> PageAfterAsync(string projectId, string table, JsonElement boundary, bool backwards, bool descending = false,
        DataFilter? filter = null, RestCaller? caller = null, CancellationToken ct = default);
    Task<EditResult> UpdateCellAsync(string projectId, TableInfo table, JsonElement row, string column, JsonElement original,
        string? newValue, CancellationToken ct = default);
    Task<EditResult> UpdateRowAsync(string projectId, TableInfo table, JsonElement row, IReadOnlyDictionary<string, string?> changes,
        CancellationToken ct = default);
    Task<EditResult> InsertAsync(string projectId, TableInfo table, IReadOnlyDictionary<string, string?> values, CancellationToken ct = default);
    Task<(int Deleted, RestError? Error)> DeleteAsync(string projectId, TableInfo table, IEnumerable<JsonElement> rows,
        CancellationToken ct = default);
}

public sealed class DataTabState(ITableData data, string projectId, References? references = null)
{
    public string ProjectId { get; } = projectId;
    /// <summary>The table shown (null: none chosen).</summary>
    public string? Table { get; private set; }
    public DataPage? Page { get; private set; }
    public List<JsonElement> Rows { get; private set; } = [];
    public int PageIndex { get; private set; }
    public string? OrderBy { get; private set; }
    public bool Descending { get; private set; }

    public int? EditRow { get; private set; }
    public string? EditColumn { get; private set; }
    public string EditText { get; private set; } = "";
    public string? EditError { get; private set; }
    /// <summary>The row as it was when editing began: the save's concurrency check uses it.</summary>
    private JsonElement? _editOriginal;

    /// <summary>A warning for the user (someone else's change, a failed delete); they may close it.</summary>
    public string? Notice { get; set; }
    public HashSet<int> Selected { get; } = [];
    public bool ConfirmDelete { get; set; }
    /// <summary>The side form: one row, every column, to insert or edit (null: closed).</summary>
    public RowForm? Form { get; private set; }

    /// <summary>The filter being written: its conditions, and whether any (OR) or all (AND) of them must hold.</summary>
    public List<FilterDraft> Drafts { get; } = [new()];
    public bool Any { get; set; }
    /// <summary>The filter in force (null: none).</summary>
    public DataFilter? Filter { get; private set; }

    /// <summary>The shown table's foreign-key columns (single-column keys), by column.</summary>
    public IReadOnlyDictionary<string, Reference> Refs { get; private set; } = new Dictionary<string, Reference>();
    /// <summary>The referenced rows' labels for the page's foreign-key cells: column → key text → label.</summary>
    public Dictionary<string, IReadOnlyDictionary<string, string>> Labels { get; } = [];

    /// <summary>Who the table is shown as (View as): the panel's own admin view unless chosen otherwise.</summary>
    public ViewAs Viewer { get; private set; } = ViewAs.Admin;

    /// <summary>Rows can be told apart (a primary key) and so edited, inserted and deleted — in the panel's own view only.</summary>
    public bool Editable => Viewer.IsAdmin && Page is { } p && p.Table.IsTable && p.Table.PrimaryKey.Count > 0;

    /// <summary>Shows the table as <paramref name="viewer"/> would get it through the REST API, from the first page.</summary>
    public async Task ViewAsAsync(ViewAs viewer)
    {
        Viewer = viewer;
        Form = null;
        PageIndex = 0;
        await LoadAsync();
    }

    private RestCaller? Caller => Viewer.IsAdmin ? null : Viewer.Caller(ProjectId);
    public long? PageCount => Page?.Total is long t ? Math.Max(1, (t + TableBrowser.PageSize - 1) / TableBrowser.PageSize) : null;
    public bool HasNext => Page is not null && (Page.Total is long t ? (PageIndex + 1L) * TableBrowser.PageSize < t : Rows.Count == TableBrowser.PageSize);

    /// <summary>Shows <paramref name="table"/> from its first page; false when it is already shown (nothing done).</summary>
    public async Task<bool> ShowAsync(string? table)
    {
        if (table == Table && Page is not null) return false;
        Table = table;
        PageIndex = 0;
        OrderBy = null;
        Form = null;
        Filter = null;
        ResetDrafts();
        await LoadAsync();
        return true;
    }

    /// <summary>A typed page jump: OFFSET (the only place it is used when the page is in primary-key order).</summary>
    public async Task GoAsync(int page)
    {
        PageIndex = Math.Max(0, page);
        await LoadAsync();
    }

    /// <summary>Next page: keyset on the primary key after the last row shown (any depth costs what the first page costs);
    /// OFFSET when sorted by another column.</summary>
    public Task NextAsync() => StepAsync(backwards: false);

    /// <summary>Previous page: keyset before the first row shown; OFFSET when sorted by another column.</summary>
    public Task PreviousAsync() => PageIndex == 0 ? Task.CompletedTask : StepAsync(backwards: true);

    private async Task StepAsync(bool backwards)
    {
        if (Page is null || Table is null) return;
        if (!TableBrowser.KeysetOrder(Page.Table, OrderBy) || Rows.Count == 0 || Page.Error is not null)
        {
            await GoAsync(PageIndex + (backwards ? -1 : 1));
            return;
        }
        var boundary = backwards ? Rows[0] : Rows[^1];
        DataPage? next;
        try { next = await data.PageAfterAsync(ProjectId, Table, boundary, backwards, Descending, Filter, Caller); }
        catch (RestException e) { Page = Page with { Rows = [], Error = e.Error }; Rows = []; return; }
        if (next is null) return;
        if (next.Error is not null) { Page = Page with { Error = next.Error }; return; }
        if (next.Rows.Count == 0 && !backwards) return; // nothing after: stay
        if (backwards && (PageIndex == 1 || next.Rows.Count < TableBrowser.PageSize))
        {
            // Back at the start (rows may have gone meanwhile): the first page as such.
            await GoAsync(0);
            return;
        }
        PageIndex += backwards ? -1 : 1;
        Page = next with { Total = Page.Total, TotalIsEstimate = Page.TotalIsEstimate };
        Rows = [.. next.Rows];
        Selected.Clear();
        ConfirmDelete = false;
        StopEdit();
        await LoadLabelsAsync();
    }

    public async Task SortAsync(string column)
    {
        Descending = OrderBy == column && !Descending;
        OrderBy = column;
        PageIndex = 0;
        await LoadAsync();
    }

    public void AddCondition() => Drafts.Add(new FilterDraft());

    public void RemoveCondition(int index)
    {
        if (Drafts.Count > 1 && index >= 0 && index < Drafts.Count) Drafts.RemoveAt(index);
    }

    /// <summary>Applies the conditions written (one without a column takes the table's first).</summary>
    public async Task ApplyFilterAsync()
    {
        var first = Page?.Table.Columns.FirstOrDefault()?.Name;
        foreach (var d in Drafts) d.Column ??= first;
        if (Drafts.Any(d => d.Column is null)) return;
        Filter = new DataFilter([.. Drafts.Select(d => new TableBrowser.SimpleFilter(d.Column!, d.Op, DataFilter.TakesValue(d.Op) ? d.Value : null))], Any);
        PageIndex = 0;
        await LoadAsync();
    }

    /// <summary>Shows the rows of <paramref name="filter"/> (from a shared URL, or a followed reference), its conditions in the editor.</summary>
    public async Task ApplyFilterAsync(DataFilter filter)
    {
        Drafts.Clear();
        Drafts.AddRange(filter.Conditions.Select(c => new FilterDraft { Column = c.Column, Op = c.Operator, Value = c.Value, Shown = c.Value }));
        Any = filter.Any;
        await ApplyFilterAsync();
    }

    public async Task ClearFilterAsync()
    {
        Filter = null;
        ResetDrafts();
        PageIndex = 0;
        await LoadAsync();
    }

    private void ResetDrafts()
    {
        Drafts.Clear();
        Drafts.Add(new FilterDraft());
        Any = false;
    }

    public async Task LoadAsync()
    {
        try { Page = Table is null ? null : await data.PageAsync(ProjectId, Table, PageIndex, OrderBy, Descending, default, Filter, Caller); }
        catch (RestException e) { Page = Page is null ? null : Page with { Rows = [], Error = e.Error }; } // a malformed filter value
        // The database is away: the panel's boundary shows "reconnecting" and brings the tab back when it returns.
        if (Page?.Error is { } outage && DatabaseProbe.IsOutageCode(outage.Code))
            throw new DatabaseUnavailableException(outage.Message);
        Rows = Page?.Rows.ToList() ?? [];
        Selected.Clear();
        ConfirmDelete = false;
        StopEdit();
        await LoadLabelsAsync();
    }

    /// <summary>The labels of the rows the page's foreign-key cells reference.</summary>
    public async Task LoadLabelsAsync()
    {
        Labels.Clear();
        if (references is null || Table is null || Page is null) return;
        Refs = await references.OfAsync(ProjectId, Table);
        foreach (var r in Refs.Values)
            Labels[r.Column] = await references.LabelsAsync(ProjectId, r, Rows
                .Select(row => row.TryGetProperty(r.Column, out var v) && v.ValueKind != JsonValueKind.Null ? Display(v) : null)
                .OfType<string>());
    }

    /// <summary>The label beside a foreign-key cell (null: not a reference, or no such row).</summary>
    public string? LabelOf(string column, JsonElement value) =>
        value.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined || !Labels.TryGetValue(column, out var labels) ? null
        : labels.GetValueOrDefault(Display(value));

    // ---- live updates: the table's changes from anywhere, applied in place (the cell being edited keeps its text) ----

    /// <summary>Merges one change of the shown table into the page.</summary>
    public async Task ApplyAsync(RowChange change)
    {
        if (Page is null) return;
        // The live changes are the admin's: as someone else, PostgreSQL decides again what shows.
        if (change.Reload || !Viewer.IsAdmin) { await LoadAsync(); return; }
        var at = IndexOf(change.Kind == ChangeKind.Insert ? change.Record : change.OldRecord ?? change.Record);
        switch (change.Kind)
        {
            case ChangeKind.Insert:
                if (at >= 0) Rows[at] = change.Record!.Value;
                else if (Rows.Count < TableBrowser.PageSize && Filter is null)
                {
                    Rows.Add(change.Record!.Value);
                    if (Page.Total is long t && !Page.TotalIsEstimate) Page = Page with { Total = t + 1 };
                }
                break;
            case ChangeKind.Update when at >= 0:
                Rows[at] = change.Record!.Value;
                break;
            case ChangeKind.Delete when at >= 0:
                Rows.RemoveAt(at);
                if (Page.Total is long n && !Page.TotalIsEstimate) Page = Page with { Total = Math.Max(0, n - 1) };
                var selected = Selected.Where(i => i != at).Select(i => i > at ? i - 1 : i).ToList();
                Selected.Clear();
                Selected.UnionWith(selected);
                if (EditRow == at)
                {
                    StopEdit();
                    Notice = "The row you were editing was deleted by someone else.";
                }
                else if (EditRow > at) EditRow--;
                break;
        }
    }

    private int IndexOf(JsonElement? row) =>
        row is { } r && Page is not null ? Rows.FindIndex(x => TableBrowser.SameKey(Page.Table, x, r)) : -1;

    // ---- editing a cell ----

    public void StartEdit(int row, ColumnInfo column)
    {
        if (!Editable || column.Generated) return;
        if (EditRow == row && EditColumn == column.Name) return;
        var v = Rows[row].TryGetProperty(column.Name, out var x) ? x : default;
        EditRow = row;
        EditColumn = column.Name;
        _editOriginal = Rows[row];
        EditError = null;
        EditText = EditTextOf(column, v);
    }

    /// <summary>The text an editor starts from: empty for NULL, JSON as JSON (indented for the side form).</summary>
    public static string EditTextOf(ColumnInfo column, JsonElement v, bool indented = false) =>
        v.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined ? ""
        : PgType.IsJson(column.TypeOid) ? JsonSerializer.Serialize(v, indented ? Indented : Compact)
        : column.TypeOid == PgType.Date && v.ValueKind == JsonValueKind.String ? v.GetString()!
        : Display(v);

    private static readonly JsonSerializerOptions Compact = new() { WriteIndented = false };
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public void StopEdit()
    {
        EditRow = null;
        EditColumn = null;
        _editOriginal = null;
        EditError = null;
    }

    /// <summary>Saves the cell being edited; true when it was saved (the editor closed), false when it stays open or was
    /// overtaken by someone else's change.</summary>
    public async Task<bool> SaveCellAsync(int row, ColumnInfo column, string? text)
    {
        // Compared with the value the editor started from, so a change made meanwhile is not overwritten.
        var shown = _editOriginal ?? Rows[row];
        var original = shown.TryGetProperty(column.Name, out var x) ? x : default;
        var result = await data.UpdateCellAsync(ProjectId, Page!.Table, shown, column.Name, original, text);
        if (result.Invalid is { } problem) { EditError = problem; return false; }
        if (result.Row is { } saved)
        {
            if (IndexOf(saved) is var at and >= 0) Rows[at] = saved;
            StopEdit();
            if (Refs.ContainsKey(column.Name)) await LoadLabelsAsync();
            return true;
        }
        if (result.Conflict)
        {
            ShowTheirs(result);
            StopEdit();
            return false;
        }
        EditError = $"{result.Error!.Code}: {result.Error.Message}";
        return false;
    }

    /// <summary>Never overwrite someone else's change: show theirs and say so.</summary>
    private void ShowTheirs(EditResult result)
    {
        if (result.Current is { } current && IndexOf(current) is var at and >= 0) Rows[at] = current;
        Notice = result.Error!.Message;
    }

    /// <summary>
    /// Tab (Shift+Tab): saves the cell being edited if its text changed, then opens the next (previous) editable cell —
    /// on to the next row after the last column. Stays put when the save is refused.
    /// </summary>
    public async Task MoveAsync(string? text, bool backwards)
    {
        if (EditRow is not int row || EditColumn is null || Page?.Table.Find(EditColumn) is not { } column) return;
        if (text != EditText && !await SaveCellAsync(row, column, text)) return;
        var next = NextCell(row, column.Name, backwards);
        StopEdit();
        if (next is var (r, c)) StartEdit(r, c);
    }

    /// <summary>The editable cell after (before) the given one in reading order; null past the page's ends.</summary>
    public (int Row, ColumnInfo Column)? NextCell(int row, string column, bool backwards)
    {
        if (Page is null) return null;
        var columns = Page.Table.Columns.Where(c => !c.Generated).ToList();
        var at = columns.FindIndex(c => c.Name == column);
        if (columns.Count == 0 || at < 0) return null;
        var flat = row * columns.Count + at + (backwards ? -1 : 1);
        return flat < 0 || flat >= Rows.Count * columns.Count ? null : (flat / columns.Count, columns[flat % columns.Count]);
    }

    // ---- selection, delete, insert ----

    public void Toggle(int row, bool selected)
    {
        if (selected) Selected.Add(row); else Selected.Remove(row);
        ConfirmDelete = false;
    }

    /// <summary>Deletes the selected rows; how many went, or null when it failed (the notice says why).</summary>
    public async Task<int?> DeleteSelectedAsync()
    {
        var (deleted, error) = await data.DeleteAsync(ProjectId, Page!.Table, Selected.Select(i => Rows[i]));
        if (error is not null) { Notice = $"{error.Code}: {error.Message}"; return null; }
        await LoadAsync();
        return deleted;
    }

    /// <summary>Opens the side form empty, for a new row.</summary>
    public void StartInsert()
    {
        StopEdit();
        Form = Page is null ? null : new RowForm(Page.Table, null, null);
    }

    /// <summary>Opens the side form on a shown row, every column in it, to edit.</summary>
    public void OpenRow(int row)
    {
        if (!Editable || row < 0 || row >= Rows.Count) return;
        StopEdit();
        Form = new RowForm(Page!.Table, row, Rows[row]);
    }

    public void CloseForm() => Form = null;

    /// <summary>Inserts the form's row, or saves the form's changed columns; false when refused (the form's Error says why).</summary>
    public async Task<bool> SaveFormAsync()
    {
        if (Form is not { } form || Page is null) return false;
        if (form.Original is not { } original)
        {
            var result = await data.InsertAsync(ProjectId, Page.Table, form.Values());
            if (Refused(form, result)) return false;
            Form = null;
            await LoadAsync();
            return true;
        }
        var changes = form.Values();
        if (changes.Count == 0) { Form = null; return true; }
        var saved = await data.UpdateRowAsync(ProjectId, Page.Table, original, changes);
        if (saved.Conflict)
        {
            ShowTheirs(saved);
            Form = null;
            return false;
        }
        if (Refused(form, saved)) return false;
        if (saved.Row is { } row && IndexOf(row) is var at and >= 0) Rows[at] = row;
        Form = null;
        return true;
    }

    private static bool Refused(RowForm form, EditResult result)
    {
        form.Error = result.Invalid ?? (result.Error is { } e ? $"{e.Code}: {e.Message}" : null);
        return form.Error is not null;
    }

    public string RangeText()
    {
        if (Page is null || Rows.Count == 0) return Page?.Total is long t0 ? $"No rows on this page of {t0:N0}" : "No rows";
        var from = PageIndex * TableBrowser.PageSize + 1;
        var to = from + Rows.Count - 1;
        var total = Page.Total is long t ? (Page.TotalIsEstimate ? $"≈ {t:N0}" : t.ToString("N0")) : "?";
        return $"Rows {from:N0}–{to:N0} of {total}";
    }

    public static string Display(JsonElement v) => v.ValueKind == JsonValueKind.String ? v.GetString()! : v.GetRawText();
}
