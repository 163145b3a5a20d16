// The Data tab's "export the current filter": the rows the filter shows, as CSV, through the same planner and executor as
// the REST API's Accept: text/csv (so a filter means the same in both), as the project owner. Bounded by the REST row cap;
// the whole table goes through the streamed COPY export (GET /api/projects/{id}/tables/{table}/export) instead.
using DbStudio.Core.Auth;
using DbStudio.Core.Catalog;
using DbStudio.Core.Rest;

namespace DbStudio.Core.Panel;

public sealed class TableExport(RestExecutor rest)
{
    /// <summary>The filtered rows as CSV (a header line, then one line per row, in primary-key order), or PostgreSQL's refusal.</summary>
    public async Task<(ReadOnlyMemory<byte> Csv, RestError? Error)> FilteredAsync(string projectId, TableInfo table, DataFilter filter,
        CancellationToken ct = default)
    {
        var res = await rest.ExecuteAsync(new RestCaller(projectId, CallerKind.Admin), new RestRequest
        {
            Verb = RestVerb.Get, Table = table.Name, Csv = true, Filters = [filter.ToFilter()],
            Order = [.. table.PrimaryKey.Select(c => new OrderTerm(c.Name, false, null))],
        }, ct);
        return res.Failure is { } f ? (default, f.Error) : (res.Body ?? default, null);
    }
}
