// The import dialog's steps: preview (CsvPreviewReader), dry run and import (CsvTransfer) — as a new table, created with
// its rows in one transaction (SchemaEditor.CreateAndImportAsync). The file is opened from the browser for each read and streamed; the progress bar counts its bytes.
using DbStudio.Core;
using DbStudio.Core.Catalog;
using DbStudio.Core.Csv;
using DbStudio.Core.Schema;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Forms;
using Microsoft.Extensions.Options;

namespace DbStudio.Web.Components.Panel;

public sealed partial class CsvImportDialog
{
    [Inject] private CsvTransfer Csv { get; set; } = null!;
    [Inject] private SchemaEditor Editor { get; set; } = null!;
    [Inject] private SchemaCache Schemas { get; set; } = null!;
    [Inject] private IOptions<DbStudioOptions> Options { get; set; } = null!;

    [Parameter, EditorRequired] public string ProjectId { get; set; } = "";
    /// <summary>The table shown in the Data tab (null: none): the import goes there unless "as a new table".</summary>
    [Parameter] public string? Table { get; set; }
    [Parameter] public EventCallback Closed { get; set; }
    /// <summary>Rows went in (the Data tab reloads).</summary>
    [Parameter] public EventCallback Imported { get; set; }
    /// <summary>A new table was created from the file (the panel lists and shows it).</summary>
    [Parameter] public EventCallback<string> TableCreated { get; set; }

    private IBrowserFile? _file;
    private CsvPreview? _preview;
    private string[] _types = [];
    private bool _newTable;
    private string _tableName = "";
    private string _key = "";
    private string? _created;
    private TableInfo? _target;
    private string? _problem;
    private bool _running;
    private double _percent;
    private string _phase = "";
    private ImportResult? _result;

    protected override async Task OnParametersSetAsync()
    {
        if (Table is null) _newTable = true;
        await LoadTargetAsync();
    }

    private async Task LoadTargetAsync()
    {
        var name = _created ?? (_newTable ? null : Table);
        _target = name is null ? null : await Schemas.FindTableAsync(ProjectId, name);
    }

    private async Task SetNewTable(bool value)
    {
        _newTable = value;
        _result = null;
        await LoadTargetAsync();
    }

    private Stream Open() => _file!.OpenReadStream(Options.Value.Csv.MaxImportBytes);

    private async Task OnFileAsync(InputFileChangeEventArgs e)
    {
        _file = e.File;
        _result = null;
        _problem = null;
        _percent = 0;
        _created = null;
        try
        {
            await using var source = Open();
            _preview = await CsvPreviewReader.ReadAsync(source);
            _types = [.. _preview.Types];
            _tableName = TableNameOf(_file.Name);
            _key = _preview.Header.FirstOrDefault(h => h == "id") ?? "";
        }
        catch (CsvImportException ex) { _preview = null; _problem = ex.Message; }
        await LoadTargetAsync();
    }

    /// <summary>"My Sales 2024.csv" → "my_sales_2024".</summary>
    private static string TableNameOf(string file)
    {
        var stem = Path.GetFileNameWithoutExtension(file).ToLowerInvariant();
        var name = new string([.. stem.Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_')]).Trim('_');
        return name.Length == 0 || char.IsAsciiDigit(name[0]) ? "t_" + name : name;
    }

    /// <summary>The run creates the table from the file (as a new table, not created yet).</summary>
    private bool CreatesTable => _newTable && _created is null && _preview is not null;

    /// <summary>The result shown is of a run that created (or, dry, would have created) the table.</summary>
    private bool _ranAsNew;

    private async Task RunAsync(bool dryRun)
    {
        if (_file is null || (_target is null && !CreatesTable)) return;
        var create = CreatesTable;
        _running = true;
        _result = null;
        _problem = null;
        var size = Math.Max(1, _file.Size);
        var opened = 0;
        var shown = DateTime.UtcNow;
        Stream OpenCounting()
        {
            opened++;
            _phase = opened switch { 1 => "Reading the header", 2 => dryRun ? "Checking with COPY" : "Importing with COPY", _ => "Finding every bad row" };
            return new ProgressStream(Open(), read =>
            {
                _percent = Math.Min(100, read * 100.0 / size);
                if (DateTime.UtcNow - shown < TimeSpan.FromMilliseconds(100)) return;
                shown = DateTime.UtcNow;
                _ = InvokeAsync(StateHasChanged);
            });
        }
        try
        {
            _ranAsNew = create;
            if (create)
            {
                var name = _tableName;
                _result = await Editor.CreateAndImportAsync(ProjectId, name,
                    SchemaEditor.FileColumns(_preview!.Header, _types, _key), OpenCounting, dryRun, CancellationToken.None);
                if (!dryRun && _result.Errors.Count == 0)
                {
                    _created = name;
                    await LoadTargetAsync();
                    await TableCreated.InvokeAsync(name);
                }
            }
            else
            {
                _result = await Csv.ImportAsync(ProjectId, _target!.Name, OpenCounting, dryRun, CancellationToken.None);
                if (_result is null) _problem = $"The table {_target.Name} no longer exists.";
                else if (!dryRun && _result.Errors.Count == 0) await Imported.InvokeAsync();
            }
        }
        catch (CsvImportException ex)
        {
            _problem = ex.Message;
            _result = new ImportResult(dryRun, 0, 0, ex.Errors);
        }
        finally
        {
            _running = false;
            _percent = 100;
        }
    }
}
