// The Data tab's side form: every column of one row, as text, with a NULL toggle each — empty for an insert (what is
// left empty takes the column's default), or a shown row's values for an edit (only what changed is sent).
using System.Text.Json;
using DbStudio.Core.Catalog;

namespace DbStudio.Core.Panel;

public sealed class RowForm
{
    private readonly Dictionary<string, string> _initial = [];
    private readonly HashSet<string> _initialNulls = [];

    public RowForm(TableInfo table, int? row, JsonElement? original)
    {
        Row = row;
        Original = original;
        Columns = table.Columns.Where(c => !c.Generated).ToList();
        foreach (var c in Columns)
        {
            var v = original is { } o && o.TryGetProperty(c.Name, out var x) ? x : default;
            _initial[c.Name] = Text[c.Name] = original is null ? "" : DataTabState.EditTextOf(c, v, indented: true);
            if (original is not null && v.ValueKind == JsonValueKind.Null) _initialNulls.Add(c.Name);
        }
        Nulls.UnionWith(_initialNulls);
    }

    /// <summary>The row's index on the page (null: a new row).</summary>
    public int? Row { get; }
    /// <summary>The row as shown when the form opened (null: a new row); the save checks the changed columns against it.</summary>
    public JsonElement? Original { get; }
    public bool IsInsert => Original is null;
    /// <summary>The columns a person may set (generated ones are PostgreSQL's).</summary>
    public IReadOnlyList<ColumnInfo> Columns { get; }
    /// <summary>The text of each column's input.</summary>
    public Dictionary<string, string> Text { get; } = [];
    /// <summary>The columns toggled to NULL.</summary>
    public HashSet<string> Nulls { get; } = [];
    /// <summary>Why the last save was refused (null: it was not).</summary>
    public string? Error { get; set; }

    public void SetNull(string column, bool isNull)
    {
        if (isNull) Nulls.Add(column); else Nulls.Remove(column);
    }

    /// <summary>
    /// What to send, by column (null = SQL NULL). An insert: the filled inputs and the NULLs (empty ones are left to their
    /// defaults). An edit: the columns whose text or NULL toggle differs from the row as shown.
    /// </summary>
    public Dictionary<string, string?> Values()
    {
        var values = new Dictionary<string, string?>();
        foreach (var c in Columns)
        {
            var isNull = Nulls.Contains(c.Name);
            var text = Text.GetValueOrDefault(c.Name) ?? "";
            if (IsInsert)
            {
                if (isNull) values[c.Name] = null;
                else if (text.Length > 0) values[c.Name] = text;
            }
            else if (isNull != _initialNulls.Contains(c.Name) || (!isNull && text != _initial[c.Name]))
                values[c.Name] = isNull ? null : text;
        }
        return values;
    }
}
