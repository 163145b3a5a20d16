// The Data tab's code-behind: builds its state (DataTabState, in Core), follows the table's live changes onto the
// render thread, and says what happened in a snackbar. Everything else is the state's.
using DbStudio.Core.Catalog;
using DbStudio.Core.Panel;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Web;
using MudBlazor;

namespace DbStudio.Web.Components.Panel;

public sealed partial class DataTab : IAsyncDisposable
{
    [Inject] private TableBrowser Browser { get; set; } = null!;
    [Inject] private ISnackbar Snackbar { get; set; } = null!;
    [Inject] private ILogger<DataTab> Log { get; set; } = null!;

    [Parameter, EditorRequired] public string ProjectId { get; set; } = "";
    [Parameter] public string? Table { get; set; }
    /// <summary>A table was created here (a CSV imported as a new table): the panel lists and selects it.</summary>
    [Parameter] public EventCallback<string?> Changed { get; set; }
    [Inject] private References References { get; set; } = null!;

    /// <summary>The filter to show the table with (the page URL's, or the one in force when the tab was left).</summary>
    [Parameter] public DataFilter? InitialFilter { get; set; }
    /// <summary>The filter in force changed: the panel keeps it and puts it in the page URL.</summary>
    [Parameter] public EventCallback<DataFilter?> FilterChanged { get; set; }

    [Inject] private ViewAsPolicies Why { get; set; } = null!;

    private bool _importing;
    /// <summary>What decides the view as someone else (null as admin).</summary>
    private ViewAsWhy? _why;

    /// <summary>View as: the table as that caller gets it from the REST API, and the policies that decide it.</summary>
    private async Task ViewAsAsync(ViewAs? chosen)
    {
        var viewer = chosen ?? ViewAs.Admin;
        _why = Table is null || viewer.IsAdmin ? null : await Why.ForAsync(ProjectId, viewer, Table);
        await _state.ViewAsAsync(viewer);
    }
    private string? _jump;

    /// <summary>Enter in the page box: that page (OFFSET — next and previous use the primary key).</summary>
    private Task JumpAsync(KeyboardEventArgs e) =>
        e.Key == "Enter" && int.TryParse(_jump, out var n) && n >= 1 ? _state.GoAsync(n - 1) : Task.CompletedTask;

    private DataTabState _state = null!;
    private CancellationTokenSource? _follow;

    protected override async Task OnParametersSetAsync()
    {
        if (_state is null || _state.ProjectId != ProjectId) _state = new DataTabState(Browser, ProjectId, References);
        if (await _state.ShowAsync(Table))
        {
            Follow();
            if (!_state.Viewer.IsAdmin && Table is not null) _why = await Why.ForAsync(ProjectId, _state.Viewer, Table);
            if (InitialFilter is { } initial) await _state.ApplyFilterAsync(initial);
        }
        if (_following is { } f && f.Table == Table)
        {
            _following = null;
            await _state.ApplyFilterAsync(new DataFilter([new TableBrowser.SimpleFilter(f.Key, "eq", f.Value)], false));
            await FilterChanged.InvokeAsync(_state.Filter);
        }
    }

    /// <summary>A reference being followed: its table, once shown, is filtered on the referenced key.</summary>
    private (string Table, string Key, string Value)? _following;

    private async Task FollowAsync(Reference reference, System.Text.Json.JsonElement value)
    {
        _following = (reference.Table, reference.Key, DataTabState.Display(value));
        await Changed.InvokeAsync(reference.Table);
    }

    /// <summary>The table's changes from anywhere, merged into the page on the render thread as they commit.</summary>
    private void Follow()
    {
        _follow?.Cancel();
        _follow?.Dispose();
        _follow = null;
        if (Table is null) return;
        var cts = _follow = new CancellationTokenSource();
        var table = Table;
        var state = _state;
        _ = Task.Run(async () =>
        {
            try
            {
                await foreach (var change in Browser.FollowAsync(ProjectId, table, cts.Token))
                    await InvokeAsync(async () =>
                    {
                        if (cts.IsCancellationRequested || state.Table != table) return;
                        await state.ApplyAsync(change);
                        StateHasChanged();
                    });
            }
            catch (OperationCanceledException) { }
            catch (Exception e) { Log.LogWarning(e, "Live updates for table {Table} stopped", table); }
        });
    }

    public ValueTask DisposeAsync()
    {
        _follow?.Cancel();
        _follow?.Dispose();
        return ValueTask.CompletedTask;
    }

    private void Toggle(int row, ChangeEventArgs e) => _state.Toggle(row, e.Value is true);

    private Task SaveCellAsync(int row, ColumnInfo column, string? text) => _state.SaveCellAsync(row, column, text);

    private async Task DeleteSelectedAsync()
    {
        if (await _state.DeleteSelectedAsync() is int deleted)
            Snackbar.Add($"{deleted} {(deleted == 1 ? "row" : "rows")} deleted", Severity.Success);
    }

    private async Task SaveFormAsync()
    {
        var insert = _state.Form?.IsInsert == true;
        if (await _state.SaveFormAsync()) Snackbar.Add(insert ? "Row inserted" : "Row saved", Severity.Success);
    }
}
