// A table's rows as CSV, streamed with COPY by the export API (GET /api/projects/{id}/tables/{table}/export, Csv/CsvTransfer):
// the whole table, or what the Data tab shows — its filter and its order. The API's query takes the Data tab's own filter
// form (`where=column.operator.value`, repeated, and `any=1`: the page URL's) and PostgREST's (`column=operator.value`,
// `or=(…)`, `select=`, `order=`, `limit=`, `offset=`), read by the REST parser, so a filter means the same everywhere.
using DbStudio.Core.Catalog;
using DbStudio.Core.Rest;

namespace DbStudio.Core.Panel;

public static class TableExport
{
    /// <summary>
    /// The export API's query string as a read of <paramref name="table"/>: PostgREST's parameters, and the Data tab's
    /// filter (<c>where</c>, <c>any</c> — names the export keeps for it), all of them ANDed. Throws RestException (400) for a
    /// filter that does not parse; columns are checked when the statement is planned.
    /// </summary>
    public static RestRequest Request(string table, IEnumerable<KeyValuePair<string, string>> query)
    {
        var list = query.ToList();
        var where = list.Where(kv => kv.Key == "where").Select(kv => kv.Value).ToList();
        var any = list.Any(kv => kv.Key == "any" && kv.Value is "1" or "true");
        var req = RestParser.Parse(RestVerb.Get, table, list.Where(kv => kv.Key is not ("where" or "any")), [], null, null, null);
        if (where.Count == 0) return req;
        var filter = DataFilter.FromQuery(where, any)
            ?? throw RestException.BadRequest("A \"where\" filter is not column.operator.value",
                string.Join(", ", where.Select(w => "where=" + RestParser.Trim(w))),
                "e.g. where=age.gt.40 — operators: " + string.Join(", ", TableBrowser.SimpleFilter.Operators.Select(o => o.Op)));
        return req with { Filters = [.. req.Filters, filter.ToFilter()] };
    }

    /// <summary>
    /// The export API's address for <paramref name="table"/> as the Data tab shows it: the filter in force (the page URL's
    /// form) and the order (a column, or the primary key, descending if asked); no filter: every row.
    /// </summary>
    public static string Url(string projectId, TableInfo table, DataFilter? filter = null, string? orderBy = null, bool descending = false)
    {
        var query = new List<string>();
        if (filter is not null)
        {
            query.AddRange(filter.ToQuery().Select(w => "where=" + Uri.EscapeDataString(w)));
            if (filter.Any && filter.Conditions.Count > 1) query.Add("any=1");
        }
        var order = orderBy is not null ? [orderBy] : descending ? table.PrimaryKey.Select(c => c.Name).ToList() : [];
        if (order.Count > 0)
            query.Add("order=" + Uri.EscapeDataString(string.Join(",",
                order.Select(c => "\"" + c.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"" + (descending ? ".desc" : ".asc")))));
        var path = $"/api/projects/{Uri.EscapeDataString(projectId)}/tables/{Uri.EscapeDataString(table.Name)}/export";
        return query.Count == 0 ? path : path + "?" + string.Join("&", query);
    }
}
