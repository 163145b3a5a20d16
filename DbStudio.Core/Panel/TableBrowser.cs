// The Data tab's pages, through the same planner and executor as the REST API (as the project owner),
// so a filter or a page means the same in both.
using System.Text.Json;
using DbStudio.Core.Rest;
using DbStudio.Core.Catalog;
using DbStudio.Core.Auth;

namespace DbStudio.Core.Panel;

public sealed record DataPage(TableInfo Table, IReadOnlyList<JsonElement> Rows, long? Total, bool TotalIsEstimate, RestError? Error);

/// <summary>
/// The outcome of an edit: the row as saved, or why not — PostgreSQL's error, someone else's change, or (Invalid) what is
/// wrong with the text typed, found before anything was sent.
/// </summary>
public sealed record EditResult(JsonElement? Row, RestError? Error, JsonElement? Current = null, string? Invalid = null)
{
    public bool Conflict => Error?.Code == TableBrowser.ConflictCode;
}

/// <summary>A change to a shown table, from anywhere (the panel's own edits included); no kind: reload the page.</summary>
public sealed record RowChange(Streams.ChangeKind? Kind, JsonElement? Record, JsonElement? OldRecord)
{
    /// <summary>The stream fell behind or was reset: reload the page.</summary>
    public bool Reload => Kind is null;
}

public sealed partial class TableBrowser(SchemaCache schemas, RestExecutor rest, Streams.ChangeHub hub, Streams.ChangeCapture capture) : ITableData
{
    public const int PageSize = 50;
    /// <summary>At and above this many rows the total shown is the planner's estimate (no count(*) per page).</summary>
    public const long EstimateAbove = RestSql.EstimatedFrom;

    public const string ConflictCode = "DBS409";

    /// <summary>
    /// Sets one cell of the row identified by its primary key — only if the cell still holds <paramref name="original"/>
    /// (what the editor showed), so someone else's change is never overwritten silently. <paramref name="newValue"/> is
    /// text as typed (null = SQL NULL); PostgreSQL parses it for the column's type.
    /// </summary>
    public Task<EditResult> UpdateCellAsync(string projectId, TableInfo table, JsonElement row, string column, JsonElement original,
        string? newValue, CancellationToken ct = default) =>
        UpdateAsync(projectId, table, row, [(column, original, newValue)], ct);

    /// <summary>
    /// Sets several cells of one row (the side form) in one statement, each only if it still holds what <paramref name="row"/>
    /// shows, as <see cref="UpdateCellAsync"/> does for one.
    /// </summary>
    public Task<EditResult> UpdateRowAsync(string projectId, TableInfo table, JsonElement row, IReadOnlyDictionary<string, string?> changes,
        CancellationToken ct = default) =>
        UpdateAsync(projectId, table, row,
            [.. changes.Select(c => (c.Key, row.TryGetProperty(c.Key, out var v) ? v : default, c.Value))], ct);

    private async Task<EditResult> UpdateAsync(string projectId, TableInfo table, JsonElement row,
        IReadOnlyList<(string Column, JsonElement Original, string? Text)> changes, CancellationToken ct)
    {
        if (changes.Count == 0) return new EditResult(row, null);
        var filters = KeyFilters(table, row);
        var body = new Dictionary<string, object?>();
        foreach (var (column, original, newValue) in changes)
        {
            var col = table.Find(column) ?? throw new InvalidOperationException($"no column {column}");
            var value = ValueFor(col, newValue);
            if (!value.IsValid) return new EditResult(null, null, Invalid: changes.Count == 1 ? value.Problem : $"{column}: {value.Problem}");
            body[column] = value.Value;
            // json has no equality operator; its cells are saved without the check.
            if (col.TypeOid != PgType.Json)
                filters.Add(original.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined
                    ? new ColumnFilter(column, FilterOp.Is, "null", null, false)
                    : new ColumnFilter(column, FilterOp.Eq, col.TypeOid == PgType.Jsonb ? original.GetRawText() : Text(original), null, false));
        }
        var res = await rest.ExecuteAsync(Admin(projectId), new RestRequest
        {
            Verb = RestVerb.Patch, Table = table.Name, Filters = filters, Return = ReturnPref.Representation,
            Body = JsonSerializer.Serialize(body),
        }, ct);
        if (res.Failure is { } failed) return new EditResult(null, failed.Error);
        var rows = res.JsonRows();
        if (rows.Count == 1) return new EditResult(rows[0], null);
        // Nothing matched: the row changed (or went away) since it was shown.
        var current = await ReadRowAsync(projectId, table, row, ct);
        return new EditResult(null, new RestError(ConflictCode,
            current is null ? "This row was deleted by someone else." : "Someone else changed this value; it now shows theirs.", null, null), current);
    }

    /// <summary>Inserts a row from the given texts (columns left out take their defaults, SERIAL included).</summary>
    public async Task<EditResult> InsertAsync(string projectId, TableInfo table, IReadOnlyDictionary<string, string?> values, CancellationToken ct = default)
    {
        var body = new Dictionary<string, object?>();
        foreach (var (name, text) in values)
        {
            var value = ValueFor(table.Find(name) ?? throw new InvalidOperationException($"no column {name}"), text);
            if (!value.IsValid) return new EditResult(null, null, Invalid: value.Problem);
            body[name] = value.Value;
        }
        var res = await rest.ExecuteAsync(Admin(projectId), new RestRequest
        {
            Verb = RestVerb.Post, Table = table.Name, Return = ReturnPref.Representation,
            Body = body.Count == 0 ? "{}" : JsonSerializer.Serialize(body),
        }, ct);
        return res.Failure is { } failed ? new EditResult(null, failed.Error) : new EditResult(res.JsonRows().FirstOrDefault(), null);
    }

    /// <summary>Deletes rows by primary key; returns how many went.</summary>
    public async Task<(int Deleted, RestError? Error)> DeleteAsync(string projectId, TableInfo table, IEnumerable<JsonElement> rows,
        CancellationToken ct = default)
    {
        var keyed = rows.Select(r => (Filter)new LogicFilter(false, KeyFilters(table, r), false)).ToList();
        if (keyed.Count == 0) return (0, null);
        var res = await rest.ExecuteAsync(Admin(projectId), new RestRequest
        {
            Verb = RestVerb.Delete, Table = table.Name, Filters = [new LogicFilter(true, keyed, false)], Return = ReturnPref.Representation,
        }, ct);
        return res.Failure is { } failed ? (0, failed.Error) : ((int)res.Rows, null);
    }

    /// <summary>
    /// The table's changes as they commit, through the same hub as the SSE stream (as the project owner: every row).
    /// Ends when <paramref name="ct"/> is cancelled; if the panel falls behind it gets a reload and follows on.
    /// </summary>
    public async IAsyncEnumerable<RowChange> FollowAsync(string projectId, string table,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        var info = await schemas.FindTableAsync(projectId, table, ct);
        if (info is null || !info.IsTable) yield break;
        await capture.EnsureAsync(projectId, info.Oid, ct);
        // As the DB_API_KEY sees it, through the same visibility check as every SSE subscriber.
        var audience = new Streams.Audience(Streams.StreamIdentity.Of(Admin(projectId)), [], "");
        while (!ct.IsCancellationRequested)
        {
            await using var sub = await hub.SubscribeAsync(projectId, info, audience, null, null, ct);
            await foreach (var f in hub.FollowAsync(sub, ct))
                if (f.Event is { } e)
                    yield return new RowChange(e.Kind, Parse(e.Record), Parse(e.OldRecord));
            if (sub.Dropped) yield return new RowChange(null, null, null);
        }
    }

    private static JsonElement? Parse(string? json) => json is null ? null : JsonDocument.Parse(json).RootElement.Clone();

    /// <summary>Whether two rows have the same primary key.</summary>
    public static bool SameKey(TableInfo table, JsonElement a, JsonElement b) =>
        table.PrimaryKey.Count > 0 && table.PrimaryKey.All(k =>
            a.TryGetProperty(k.Name, out var x) && b.TryGetProperty(k.Name, out var y) && Text(x) == Text(y));

    private async Task<JsonElement?> ReadRowAsync(string projectId, TableInfo table, JsonElement row, CancellationToken ct)
    {
        var res = await rest.ExecuteAsync(Admin(projectId),
            new RestRequest { Verb = RestVerb.Get, Table = table.Name, Filters = KeyFilters(table, row), Limit = 1 }, ct);
        return res.JsonRows() is [{ ValueKind: JsonValueKind.Object } r, ..] ? r : null;
    }

    private static List<Filter> KeyFilters(TableInfo table, JsonElement row)
    {
        if (table.PrimaryKey.Count == 0) throw new InvalidOperationException($"{table.Name} has no primary key");
        return table.PrimaryKey.Select(k => (Filter)new ColumnFilter(k.Name, FilterOp.Eq, Text(row.GetProperty(k.Name)), null, false)).ToList();
    }

    /// <summary>The JSON value for a typed text: json/jsonb columns take the JSON itself, other types their text form.</summary>
    private static Validated<object?> ValueFor(ColumnInfo c, string? text)
    {
        if (text is null) return Validated<object?>.Ok(null);
        if (PgType.IsJson(c.TypeOid))
        {
            try { return Validated<object?>.Ok(JsonDocument.Parse(text).RootElement.Clone()); }
            catch (JsonException e) { return Validated<object?>.Invalid($"Not valid JSON: {e.Message}"); }
        }
        return Validated<object?>.Ok(text);
    }

    private static string Text(JsonElement v) => v.ValueKind == JsonValueKind.String ? v.GetString()! : v.GetRawText();

    private static RestCaller Admin(string projectId) => new(projectId, CallerKind.Admin);

    /// <summary>One condition of the Data tab's filter: one column, one operator, one value — a REST filter underneath.
    /// The operators are the REST API's, each also negated ("not."), plus "contains" (ilike with the text as it is).</summary>
    public sealed record SimpleFilter(string Column, string Operator, string? Value)
    {
        private static readonly (string Op, string Label)[] Rest =
        [
            ("eq", "="), ("neq", "≠"), ("gt", ">"), ("gte", "≥"), ("lt", "<"), ("lte", "≤"), ("like", "like"), ("ilike", "ilike"),
            ("match", "~"), ("imatch", "~*"), ("in", "in (a,b)"), ("is", "is"), ("isdistinct", "is distinct from"),
            ("cs", "contains @>"), ("cd", "contained in <@"), ("ov", "overlaps &&"),
            ("fts", "fts"), ("plfts", "plfts"), ("phfts", "phfts"), ("wfts", "wfts"),
            ("sl", "range <<"), ("sr", "range >>"), ("nxr", "range &<"), ("nxl", "range &>"), ("adj", "range -|-"),
        ];

        public static readonly IReadOnlyList<(string Op, string Label)> Operators =
        [
            ("eq", "="), ("neq", "≠"), ("gt", ">"), ("gte", "≥"), ("lt", "<"), ("lte", "≤"), ("contains", "contains"),
            ("is.null", "is NULL"), ("not.is.null", "is not NULL"),
            .. Rest.Skip(6), .. Rest.Select(o => ("not." + o.Op, "not " + o.Label)),
        ];

        internal Filter ToFilter() => Operator switch
        {
            "is.null" => new ColumnFilter(Column, FilterOp.Is, "null", null, false),
            "not.is.null" => new ColumnFilter(Column, FilterOp.Is, "null", null, true),
            "contains" => new ColumnFilter(Column, FilterOp.Ilike, "%" + (Value ?? "").Replace("%", "\\%").Replace("_", "\\_") + "%", null, false),
            _ => RestParser.ParseColumnFilter(Column, Operator + "." + (Value ?? "")),
        };
    }

    public async Task<DataPage?> PageAsync(string projectId, string table, int page, string? orderBy = null, bool descending = false,
        CancellationToken ct = default, DataFilter? filter = null, RestCaller? caller = null)
    {
        var info = await schemas.FindTableAsync(projectId, table, ct);
        if (info is null) return null;
        var req = new RestRequest
        {
            Verb = RestVerb.Get, Table = table, Limit = PageSize, Offset = (long)page * PageSize,
            // With a filter, or as someone whose policies hide rows, the total is exact (the estimate is for the whole table).
            Count = filter is null && caller is null ? CountPref.Estimated : CountPref.Exact,
            Filters = filter is null ? [] : [filter.ToFilter()],
            Order = orderBy is null ? info.PrimaryKey.Select(c => new OrderTerm(c.Name, descending, null)).ToList()
                : [new OrderTerm(orderBy, descending, null)],
        };
        var res = await rest.ExecuteAsync(caller ?? new RestCaller(projectId, CallerKind.Admin), req, ct);
        return res.Failure is { } failed ? new DataPage(info, [], null, false, failed.Error)
            : new DataPage(info, res.JsonRows(), res.Total, res.TotalIsEstimate, null);
    }
}
