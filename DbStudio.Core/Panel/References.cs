// Foreign keys in the Data tab: which columns of a table reference another table (single-column keys), the label shown
// beside such a cell (the referenced row's name-like column), and the picker's search over the referenced table — all
// through the same planner and executor as the REST API, as the project owner.
using System.Text.Json;
using DbStudio.Core.Auth;
using DbStudio.Core.Catalog;
using DbStudio.Core.Rest;

namespace DbStudio.Core.Panel;

/// <summary>A column of the shown table that references <see cref="Key"/> of <see cref="Table"/>, whose rows are named
/// by <see cref="Label"/> (the key itself when the table has nothing better).</summary>
public sealed record Reference(string Column, string Table, string Key, string Label);

/// <summary>One row of a referenced table: its key and label, as text.</summary>
public sealed record ReferencedRow(string Key, string Label);

public sealed class References(SchemaCache schemas, RestExecutor rest)
{
    public const int PickerSize = 20;
    private static readonly string[] LabelNames = ["name", "title", "label", "display_name", "username", "email", "code", "slug"];

    /// <summary>The table's single-column foreign keys, by referencing column.</summary>
    public async Task<IReadOnlyDictionary<string, Reference>> OfAsync(string projectId, string table, CancellationToken ct = default)
    {
        var snapshot = await schemas.GetAsync(projectId, ct);
        var refs = new Dictionary<string, Reference>();
        foreach (var fk in snapshot.ForeignKeys.Where(k => k.Table == table && k.Columns.Count == 1))
        {
            if (refs.ContainsKey(fk.Columns[0]) || !snapshot.Tables.TryGetValue(fk.Foreign, out var target)) continue;
            refs[fk.Columns[0]] = new Reference(fk.Columns[0], fk.Foreign, fk.ForeignColumns[0], LabelOf(target, fk.ForeignColumns[0]));
        }
        return refs;
    }

    /// <summary>A name-like column (name, title, …), else the first text column that is not the key, else the key.</summary>
    public static string LabelOf(TableInfo table, string key)
    {
        var candidates = table.Columns.Where(c => c.Name != key).ToList();
        return candidates.FirstOrDefault(c => LabelNames.Contains(c.Name.ToLowerInvariant()))?.Name
            ?? candidates.FirstOrDefault(c => c.TypeOid is PgType.Text or PgType.Varchar)?.Name
            ?? key;
    }

    /// <summary>The labels of the referenced rows with these keys (key text → label); keys with no row are left out.</summary>
    public async Task<IReadOnlyDictionary<string, string>> LabelsAsync(string projectId, Reference r, IEnumerable<string> keys, CancellationToken ct = default)
    {
        var wanted = keys.Distinct().ToList();
        if (wanted.Count == 0) return new Dictionary<string, string>();
        var rows = await ReadAsync(projectId, r, [new ColumnFilter(r.Key, FilterOp.In, null, wanted, false)], wanted.Count, ct);
        return rows.ToDictionary(x => x.Key, x => x.Label);
    }

    /// <summary>The picker: rows of the referenced table whose label contains <paramref name="text"/> (or whose key is it),
    /// in key order, at most <see cref="PickerSize"/>.</summary>
    public async Task<IReadOnlyList<ReferencedRow>> SearchAsync(string projectId, Reference r, string? text, CancellationToken ct = default)
    {
        List<Filter> filters = [];
        if (!string.IsNullOrWhiteSpace(text))
        {
            var like = new ColumnFilter(r.Label, FilterOp.Ilike, "%" + text.Trim().Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_") + "%", null, false);
            var target = await schemas.FindTableAsync(projectId, r.Table, ct);
            var keyIsText = target?.Find(r.Key)?.TypeOid is PgType.Text or PgType.Varchar;
            var keyIsNumber = target?.Find(r.Key)?.TypeOid is PgType.Int8 or PgType.Int2 or PgType.Int4 && long.TryParse(text.Trim(), out _);
            filters.Add(keyIsText || keyIsNumber
                ? new LogicFilter(true, [like, new ColumnFilter(r.Key, FilterOp.Eq, text.Trim(), null, false)], false)
                : like);
        }
        return await ReadAsync(projectId, r, filters, PickerSize, ct);
    }

    private async Task<List<ReferencedRow>> ReadAsync(string projectId, Reference r, IReadOnlyList<Filter> filters, int limit, CancellationToken ct)
    {
        var res = await rest.ExecuteAsync(new RestCaller(projectId, CallerKind.Admin), new RestRequest
        {
            Verb = RestVerb.Get, Table = r.Table, Filters = filters, Limit = limit,
            Select = [new SelectItem(r.Key, "k", "text"), new SelectItem(r.Label, "l", "text")],
            Order = [new OrderTerm(r.Key, false, null)],
        }, ct);
        if (res.Failure is not null) return [];
        return [.. res.JsonRows().Select(e => new ReferencedRow(e.GetProperty("k").GetString() ?? "", e.GetProperty("l").GetString() ?? ""))];
    }
}
