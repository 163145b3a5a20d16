// Keyset paging for the Data tab's next and previous: the page after (or before) a row, found through the primary key's
// index — `WHERE (key) > (the row's key) ORDER BY key LIMIT 50` as REST filters — so any depth of a large table costs what
// the first page costs. OFFSET stays for a typed page jump. No count is asked: the tab keeps the total it has.
using System.Text.Json;
using DbStudio.Core.Catalog;
using DbStudio.Core.Rest;

namespace DbStudio.Core.Panel;

public sealed partial class TableBrowser
{
    /// <summary>Whether a page in this order can be reached by keyset: the table has a primary key and the page is in its
    /// order (no column chosen, or the key's only column).</summary>
    public static bool KeysetOrder(TableInfo table, string? orderBy) =>
        table.PrimaryKey.Count > 0 && (orderBy is null || (table.PrimaryKey.Count == 1 && table.PrimaryKey[0].Name == orderBy));

    /// <summary>
    /// The <see cref="PageSize"/> rows after <paramref name="boundary"/> (or before it, <paramref name="backwards"/>) in
    /// primary-key order (descending if asked), within the filter, in display order. Total is null (not counted).
    /// </summary>
    public async Task<DataPage?> PageAfterAsync(string projectId, string table, JsonElement boundary, bool backwards, bool descending = false,
        DataFilter? filter = null, Auth.RestCaller? caller = null, CancellationToken ct = default)
    {
        var info = await schemas.FindTableAsync(projectId, table, ct);
        if (info is null) return null;
        if (info.PrimaryKey.Count == 0) throw new InvalidOperationException($"{table} has no primary key");
        // Walking towards larger keys: ascending and forwards, or descending and backwards.
        var up = descending == backwards;
        List<Filter> filters = [After(info.PrimaryKey, boundary, up)];
        if (filter is not null) filters.Add(filter.ToFilter());
        var res = await rest.ExecuteAsync(caller ?? new Auth.RestCaller(projectId, Auth.CallerKind.Admin), new RestRequest
        {
            Verb = RestVerb.Get, Table = table, Limit = PageSize, Filters = filters,
            Order = [.. info.PrimaryKey.Select(c => new OrderTerm(c.Name, !up, null))],
        }, ct);
        if (res.Failure is { } failed) return new DataPage(info, [], null, false, failed.Error);
        var rows = res.JsonRows().ToList();
        if (backwards) rows.Reverse();
        return new DataPage(info, rows, null, false, null);
    }

    /// <summary>(k1, k2, …) &gt; (v1, v2, …) — or &lt; — as REST filters: k1 &gt; v1 OR (k1 = v1 AND k2 &gt; v2) OR ….</summary>
    internal static Filter After(IReadOnlyList<ColumnInfo> key, JsonElement row, bool up)
    {
        var op = up ? FilterOp.Gt : FilterOp.Lt;
        var terms = new List<Filter>();
        for (var i = 0; i < key.Count; i++)
        {
            List<Filter> and = [.. key.Take(i).Select(k => (Filter)new ColumnFilter(k.Name, FilterOp.Eq, Text(row.GetProperty(k.Name)), null, false))];
            and.Add(new ColumnFilter(key[i].Name, op, Text(row.GetProperty(key[i].Name)), null, false));
            terms.Add(and.Count == 1 ? and[0] : new LogicFilter(false, and, false));
        }
        return terms.Count == 1 ? terms[0] : new LogicFilter(true, terms, false);
    }
}
