// The Data tab's pages, through the same planner and executor as the REST API (as the project owner),
// so a filter or a page means the same in both.
using System.Text.Json;
using DbStudio.Core.Rest;

namespace DbStudio.Core.Panel;

public sealed record DataPage(TableInfo Table, IReadOnlyList<JsonElement> Rows, long? Total, bool TotalIsEstimate, RestError? Error);

public sealed class TableBrowser(SchemaCache schemas, RestExecutor rest)
{
    public const int PageSize = 50;
    /// <summary>At and above this many rows the total shown is the planner's estimate (no count(*) per page).</summary>
    public const long EstimateAbove = 100_000;

    public async Task<DataPage?> PageAsync(string projectId, string table, int page, string? orderBy = null, bool descending = false,
        CancellationToken ct = default)
    {
        var info = await schemas.FindTableAsync(projectId, table, ct);
        if (info is null) return null;
        var req = new RestRequest
        {
            Verb = RestVerb.Get, Table = table, Limit = PageSize, Offset = (long)page * PageSize, Count = CountPref.Estimated,
            Order = orderBy is null ? info.PrimaryKey.Select(c => new OrderTerm(c.Name, descending, null)).ToList()
                : [new OrderTerm(orderBy, descending, null)],
        };
        var res = await rest.ExecuteAsync(new RestCaller(projectId, CallerKind.Admin), req, ct);
        if (res.Error is not null) return new DataPage(info, [], null, false, res.Error);
        using var doc = JsonDocument.Parse(res.Body ?? "[]"u8.ToArray());
        var rows = doc.RootElement.EnumerateArray().Select(e => e.Clone()).ToList();
        long? total = res.ContentRange is { } cr && long.TryParse(cr[(cr.IndexOf('/') + 1)..], out var t) ? t : null;
        return new DataPage(info, rows, total, total >= EstimateAbove, null);
    }
}
