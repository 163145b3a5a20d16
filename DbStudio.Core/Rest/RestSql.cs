// Stage 3: plans a RestRequest against the table's real columns and writes its one SQL statement.
// Every name is checked against the catalog and quoted; every value is a parameter, cast to the
// column's own type so PostgreSQL parses it and indexes apply. PostgreSQL builds the response JSON.
using System.Text;
using System.Text.Json;
using DbStudio.Core.Sql;
using Npgsql;
using NpgsqlTypes;
using DbStudio.Core.Catalog;
using DbStudio.Core.Auth;

namespace DbStudio.Core.Rest;

/// <summary>
/// The statement of a request, and optionally a count statement run before it in the same round trip (it uses the
/// first <see cref="CountParameters"/> parameters). With <see cref="ReturnsRows"/> the statement yields one JSON text
/// per row (PostgreSQL's row_to_json: measured ~40% cheaper for PostgreSQL than json_agg on 50-row pages); otherwise
/// it is a plain write whose affected-row count is the page size. Plain writes carry no RETURNING clause, because
/// PostgreSQL applies SELECT policies to RETURNING and an insert-only caller must succeed.
/// </summary>
public sealed record RestPlan(string Sql, IReadOnlyList<NpgsqlParameter> Parameters, bool ReturnsRows, bool IsWrite,
    string? CountSql = null, int CountParameters = 0)
{
    /// <summary>When set, the statement returns these columns (binary, or text where <see cref="PlainColumn.SelectAsText"/>)
    /// and .NET writes the JSON (RowJson); otherwise it returns one row_to_json text per row.</summary>
    public IReadOnlyList<PlainColumn>? PlainColumns { get; init; }
}

public sealed class RestSql
{
    private const string T = "pgrst_t";        // alias of the target table
    private const string Src = "pgrst_source"; // the CTE holding the statement's rows
    private const string Body = "pgrst_body";  // the request body as a record set

    private readonly StringBuilder _sql = new();
    private readonly List<NpgsqlParameter> _params = [];
    private readonly RestRequest _req;
    private readonly TableInfo _table;
    /// <summary>Who asks (its role decides which columns an error hint may name); null: name none.</summary>
    private readonly RestCaller? _caller;

    /// <summary>The alias filters name the target by (pgrst_t, or the table's own name for <see cref="FilterCondition"/>).</summary>
    private readonly string _alias = T;

    private RestSql(RestRequest req, TableInfo table, RestCaller? caller, string alias = T, List<NpgsqlParameter>? parameters = null)
    {
        _req = req;
        _table = table;
        _caller = caller;
        _alias = alias;
        if (parameters is not null) _params = parameters;
    }

    /// <summary>
    /// The condition <paramref name="filters"/> put on rows of <paramref name="table"/> named <paramref name="alias"/>
    /// (quoted), exactly as GET would filter: values appended to <paramref name="parameters"/> and numbered after those
    /// already there. Throws RestException for an unknown column. "true" when there are no filters.
    /// </summary>
    public static string FilterCondition(IReadOnlyList<Filter> filters, TableInfo table, string alias, List<NpgsqlParameter> parameters,
        RestCaller? caller = null)
    {
        var b = new RestSql(new RestRequest { Verb = RestVerb.Get, Table = table.Name, Filters = filters }, table, caller, alias, parameters);
        var where = b.Where();
        return where.Length == 0 ? "true" : where;
    }

    /// <summary>The columns <paramref name="filters"/> name (checked against the table).</summary>
    public static IEnumerable<string> FilterColumns(IEnumerable<Filter> filters) => filters.SelectMany(f => f switch
    {
        LogicFilter g => FilterColumns(g.Children),
        ColumnFilter c => [c.Column],
        _ => [],
    }).Distinct();

    /// <param name="ownerColumn">the table's user_id_col; a signed-in user's inserts get their id there</param>
    /// <param name="maxRows">most rows a read returns</param>
    public static RestPlan Build(RestRequest req, TableInfo table, RestCaller caller, string? ownerColumn, long maxRows)
    {
        var b = new RestSql(req, table, caller);
        return req.Verb switch
        {
            RestVerb.Get or RestVerb.Head => b.Read(maxRows),
            RestVerb.Post => b.Insert(caller, ownerColumn),
            RestVerb.Patch => b.Update(caller),
            RestVerb.Delete => b.Delete(caller),
            _ => throw new ArgumentOutOfRangeException(nameof(req)),
        };
    }

    // ---- statements -----------------------------------------------------------------------------------

    private RestPlan Read(long maxRows)
    {
        var where = Where();
        string? countSql = null;
        if (_req.Count != CountPref.None) countSql = "SELECT " + CountExpression(where);
        var countParams = _params.Count;
        var limit = Math.Min(_req.Limit ?? maxRows, maxRows);
        // The page is cut in a subquery and its values are turned into output there-after: PostgreSQL evaluates an
        // outer SELECT list only for the rows that survive OFFSET/LIMIT (a cast in the inner list would run for every
        // skipped row too).
        var plain = PlainColumns();
        if (plain is not null) _sql.Append("SELECT ").Append(PlainSelectList(plain));
        else _sql.Append("SELECT row_to_json(").Append(Src).Append(")::text");
        _sql.Append(" FROM (SELECT ").Append(SelectList()).Append(" FROM ").Append(Target()).Append(" AS ").Append(T);
        if (where.Length > 0) _sql.Append(" WHERE ").Append(where);
        AppendOrder();
        _sql.Append(" LIMIT ").Append(Param(limit, NpgsqlDbType.Bigint));
        if (_req.Offset > 0) _sql.Append(" OFFSET ").Append(Param(_req.Offset, NpgsqlDbType.Bigint));
        _sql.Append(") ").Append(Src);
        return new RestPlan(_sql.ToString(), _params, ReturnsRows: true, IsWrite: false, countSql, countParams) { PlainColumns = plain };
    }

    private RestPlan Insert(RestCaller caller, string? ownerColumn)
    {
        var (json, keys, objects) = ParseBody(allowArray: true);
        if (objects == 0) return new RestPlan("SELECT NULL::text WHERE false", [], ReturnsRows: true, IsWrite: true);
        var columns = (_req.Columns ?? keys).Select(Column).ToList();
        var fillOwner = caller.Kind == CallerKind.User && ownerColumn is not null && _table.Find(ownerColumn) is not null;
        if (fillOwner && columns.All(c => c.Name != ownerColumn)) columns.Add(_table.Find(ownerColumn!)!);
        if (columns.Count == 0)
        {
            if (objects > 1) throw RestException.BadRequest("Objects without keys can only be inserted one at a time", null,
                "Send {} alone to insert a row of defaults");
            OpenWrite().Append("INSERT INTO ").Append(Target()).Append(" AS ").Append(T).Append(" DEFAULT VALUES");
            return CloseWrite();
        }

        var bodyParam = Param(json, NpgsqlDbType.Json);
        OpenWrite().Append("INSERT INTO ").Append(Target()).Append(" AS ").Append(T).Append(" (")
            .AppendJoin(", ", columns.Select(c => SqlText.Ident(c.Name))).Append(") SELECT ");
        for (var i = 0; i < columns.Count; i++)
        {
            if (i > 0) _sql.Append(", ");
            var c = columns[i];
            var value = Body + "." + SqlText.Ident(c.Name);
            if (fillOwner && c.Name == ownerColumn)
                _sql.Append("coalesce(").Append(value).Append(", ").Append(Param(caller.UserId.ToString(), NpgsqlDbType.Text))
                    .Append("::").Append(c.Type).Append(')');
            else _sql.Append(value);
        }
        _sql.Append(" FROM json_populate_recordset(NULL::").Append(Target()).Append(", ").Append(bodyParam).Append(") ").Append(Body);
        AppendOnConflict(columns);
        return CloseWrite();
    }

    private RestPlan Update(RestCaller caller)
    {
        RefuseUnfiltered(caller, "PATCH");
        var (json, keys, _) = ParseBody(allowArray: false);
        if (keys.Count == 0) throw RestException.BadRequest("Nothing to update: the body names no columns", null, "Send an object such as {\"name\":\"x\"}");
        var columns = keys.Select(Column).ToList();
        var bodyParam = Param(json, NpgsqlDbType.Json);
        var where = Where();
        OpenWrite().Append("UPDATE ").Append(Target()).Append(" AS ").Append(T).Append(" SET ")
            .AppendJoin(", ", columns.Select(c => $"{SqlText.Ident(c.Name)} = {Body}.{SqlText.Ident(c.Name)}"))
            .Append(" FROM (SELECT * FROM json_populate_record(NULL::").Append(Target()).Append(", ").Append(bodyParam).Append(")) ").Append(Body);
        if (where.Length > 0) _sql.Append(" WHERE ").Append(where);
        return CloseWrite();
    }

    private RestPlan Delete(RestCaller caller)
    {
        RefuseUnfiltered(caller, "DELETE");
        var where = Where();
        OpenWrite().Append("DELETE FROM ").Append(Target()).Append(" AS ").Append(T);
        if (where.Length > 0) _sql.Append(" WHERE ").Append(where);
        return CloseWrite();
    }

    private void RefuseUnfiltered(RestCaller caller, string verb)
    {
        if (_req.Filters.Count == 0 && caller.Kind != CallerKind.Admin)
            throw new RestException(400, "PGRST106", $"{verb} requires a filter",
                $"A {verb} without filters would touch every row of \"{_table.Name}\".",
                "Add a filter such as ?id=eq.1 (the DB_API_KEY may change every row).");
    }

    private bool ReturnsBody() => _req.Return == ReturnPref.Representation || _req.Singular && _req.Return != ReturnPref.Minimal;

    /// <summary>A write that returns rows runs inside a CTE whose rows PostgreSQL turns into JSON.</summary>
    private StringBuilder OpenWrite() => ReturnsBody() ? _sql.Append("WITH ").Append(Src).Append(" AS (") : _sql;

    private RestPlan CloseWrite()
    {
        if (!ReturnsBody()) return new RestPlan(_sql.ToString(), _params, ReturnsRows: false, IsWrite: true);
        _sql.Append(" RETURNING ").Append(SelectList()).Append(") SELECT row_to_json(").Append(Src).Append(")::text FROM ").Append(Src);
        return new RestPlan(_sql.ToString(), _params, ReturnsRows: true, IsWrite: true);
    }

    private void AppendOnConflict(IReadOnlyList<ColumnInfo> insertColumns)
    {
        if (_req.Resolution == ResolutionPref.None) return;
        var target = _req.OnConflict?.Select(Column).ToList() ?? _table.PrimaryKey.ToList();
        if (target.Count == 0)
            throw RestException.BadRequest("An upsert needs on_conflict or a primary key",
                $"\"{_table.Name}\" has no primary key", "Add ?on_conflict=column (a column with a unique constraint)");
        _sql.Append(" ON CONFLICT (").AppendJoin(", ", target.Select(c => SqlText.Ident(c.Name))).Append(") ");
        var updates = insertColumns.Where(c => target.All(t => t.Name != c.Name)).ToList();
        if (_req.Resolution == ResolutionPref.IgnoreDuplicates || updates.Count == 0) _sql.Append("DO NOTHING");
        else _sql.Append("DO UPDATE SET ").AppendJoin(", ", updates.Select(c => $"{SqlText.Ident(c.Name)} = EXCLUDED.{SqlText.Ident(c.Name)}"));
    }

    // ---- pieces ---------------------------------------------------------------------------------------

    private string Target() => SqlText.Qualified(_table.Schema, _table.Name);

    private ColumnInfo Column(string name) => _table.Find(name) ?? throw UnknownColumn(name);

    /// <summary>The hint names only the columns the caller's role holds a privilege on (PostgreSQL decided, SchemaCache).</summary>
    private RestException UnknownColumn(string name)
    {
        var usable = _caller is null ? [] : _table.ColumnsFor(_caller.Role).Select(c => c.Name).ToList();
        return new(400, "42703", $"column {_table.Name}.{RestParser.Trim(name)} does not exist", null,
            usable.Count == 0 ? null : $"Columns of \"{_table.Name}\": {string.Join(", ", usable)}");
    }

    /// <summary>The output columns with their JSON kinds, when every one has a direct JSON form (RowJson).</summary>
    private List<PlainColumn>? PlainColumns()
    {
        var result = new List<PlainColumn>();
        foreach (var item in _req.Select)
        {
            if (item.IsStar)
            {
                foreach (var c in _table.Columns)
                {
                    if (RowJson.KindOf(c.TypeOid) is not { } k) return null;
                    result.Add(new PlainColumn(c.Name, k));
                }
                continue;
            }
            var col = Column(item.Column);
            var kind = item.Cast is not null ? RowJson.KindOfCast(item.Cast) : RowJson.KindOf(col.TypeOid);
            if (kind is null) return null;
            result.Add(new PlainColumn(item.Alias ?? col.Name, kind.Value));
        }
        // Duplicate output names: row_to_json keeps both; keep its behaviour there.
        return result.Select(c => c.Name).Distinct().Count() == result.Count ? result : null;
    }

    /// <summary>The outer SELECT list for <paramref name="plain"/>: the subquery's columns, as text where the kind says so.</summary>
    private static string PlainSelectList(IReadOnlyList<PlainColumn> plain) =>
        string.Join(", ", plain.Select(c => c.SelectAsText ? $"({Src}.{SqlText.Ident(c.Name)})::text" : $"{Src}.{SqlText.Ident(c.Name)}"));

    private string SelectList()
    {
        var parts = new List<string>();
        foreach (var item in _req.Select)
        {
            if (item.IsStar) { parts.Add(T + ".*"); continue; }
            var c = Column(item.Column);
            var expr = T + "." + SqlText.Ident(c.Name);
            if (item.Cast is not null) expr = $"({expr})::{item.Cast}";
            parts.Add(expr + " AS " + SqlText.Ident(item.Alias ?? c.Name));
        }
        return string.Join(", ", parts);
    }

    private string CountExpression(string where)
    {
        if (_req.Count == CountPref.None) return "NULL::bigint";
        var exact = $"(SELECT count(*) FROM {Target()} AS {T}{(where.Length > 0 ? " WHERE " + where : "")})";
        if (_req.Count == CountPref.Exact || where.Length > 0) return exact;
        // planned / estimated without filters: the planner's row estimate for large tables, exact for small ones
        var oid = Param((long)_table.Oid, NpgsqlDbType.Bigint);
        var estimate = $"(SELECT reltuples::bigint FROM pg_catalog.pg_class WHERE oid = {oid}::oid)";
        return _req.Count == CountPref.Planned
            ? $"(SELECT CASE WHEN e >= 0 THEN e ELSE {exact} END FROM (SELECT {estimate} AS e) pgrst_e)"
            : $"(SELECT CASE WHEN e >= 100000 THEN e ELSE {exact} END FROM (SELECT {estimate} AS e) pgrst_e)";
    }

    private void AppendOrder()
    {
        if (_req.Order.Count == 0) return;
        _sql.Append(" ORDER BY ");
        for (var i = 0; i < _req.Order.Count; i++)
        {
            var o = _req.Order[i];
            if (i > 0) _sql.Append(", ");
            _sql.Append(T).Append('.').Append(SqlText.Ident(Column(o.Column).Name)).Append(o.Descending ? " DESC" : " ASC");
            if (o.NullsFirst is bool nf) _sql.Append(nf ? " NULLS FIRST" : " NULLS LAST");
        }
    }

    private string Where() => string.Join(" AND ", _req.Filters.Select(Condition));

    private string Condition(Filter f)
    {
        string expr;
        switch (f)
        {
            case LogicFilter g:
                expr = g.Children.Count == 0 ? (g.IsOr ? "false" : "true")
                    : "(" + string.Join(g.IsOr ? " OR " : " AND ", g.Children.Select(Condition)) + ")";
                break;
            case ColumnFilter c:
                expr = Leaf(c);
                break;
            default: throw new InvalidOperationException();
        }
        return f.Negated ? $"NOT ({expr})" : expr;
    }

    private string Leaf(ColumnFilter f)
    {
        var c = Column(f.Column);
        var col = _alias + "." + SqlText.Ident(c.Name);
        string Typed(string? v) => $"{Param(v, NpgsqlDbType.Text)}::{c.Type}";
        return f.Op switch
        {
            FilterOp.Eq => $"{col} = {Typed(f.Value)}",
            FilterOp.Neq => $"{col} <> {Typed(f.Value)}",
            FilterOp.Gt => $"{col} > {Typed(f.Value)}",
            FilterOp.Gte => $"{col} >= {Typed(f.Value)}",
            FilterOp.Lt => $"{col} < {Typed(f.Value)}",
            FilterOp.Lte => $"{col} <= {Typed(f.Value)}",
            FilterOp.Like => $"{col}::text LIKE {Param(f.Value, NpgsqlDbType.Text)}",
            FilterOp.Ilike => $"{col}::text ILIKE {Param(f.Value, NpgsqlDbType.Text)}",
            FilterOp.Match => $"{col}::text ~ {Param(f.Value, NpgsqlDbType.Text)}",
            FilterOp.Imatch => $"{col}::text ~* {Param(f.Value, NpgsqlDbType.Text)}",
            FilterOp.In => f.Values!.Count == 0 ? "false"
                : $"{col} = ANY({Param(f.Values!.ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Text)}::{c.Type}[])",
            FilterOp.Is => f.Value switch
            {
                "null" => $"{col} IS NULL",
                "not_null" => $"{col} IS NOT NULL",
                "true" => $"{col} IS TRUE",
                "false" => $"{col} IS FALSE",
                _ => $"{col} IS UNKNOWN",
            },
            FilterOp.Cs => $"{col} @> {Typed(f.Value)}",
            FilterOp.Cd => $"{col} <@ {Typed(f.Value)}",
            FilterOp.Ov => $"{col} && {Typed(f.Value)}",
            _ => throw new ArgumentOutOfRangeException(nameof(f)),
        };
    }

    private string Param(object? value, NpgsqlDbType type)
    {
        _params.Add(new NpgsqlParameter { Value = value ?? DBNull.Value, NpgsqlDbType = type });
        return "$" + _params.Count;
    }

    /// <summary>Checks the body is JSON of the right shape and returns it (an object is wrapped as [obj]) with its keys.</summary>
    private (string Json, List<string> Keys, int Objects) ParseBody(bool allowArray)
    {
        if (string.IsNullOrWhiteSpace(_req.Body))
            throw new RestException(400, "PGRST102", "Empty or invalid json", "The request body is empty");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(_req.Body, new JsonDocumentOptions { MaxDepth = 64 }); }
        catch (JsonException e) { throw new RestException(400, "PGRST102", "Empty or invalid json", e.Message); }
        using (doc)
        {
            var keys = new List<string>();
            var seen = new HashSet<string>();
            void Collect(JsonElement obj)
            {
                foreach (var p in obj.EnumerateObject())
                    if (seen.Add(p.Name)) keys.Add(p.Name);
            }
            switch (doc.RootElement.ValueKind)
            {
                case JsonValueKind.Object:
                    Collect(doc.RootElement);
                    return (allowArray ? "[" + _req.Body + "]" : _req.Body, keys, 1);
                case JsonValueKind.Array when allowArray:
                    foreach (var item in doc.RootElement.EnumerateArray())
                    {
                        if (item.ValueKind != JsonValueKind.Object)
                            throw new RestException(400, "PGRST102", "All object keys must match", "Every element of the array must be a JSON object");
                        Collect(item);
                    }
                    return (_req.Body, keys, doc.RootElement.GetArrayLength());
                default:
                    throw new RestException(400, "PGRST102", "Empty or invalid json",
                        allowArray ? "The body must be a JSON object or an array of objects" : "The body must be a JSON object");
            }
        }
    }
}
