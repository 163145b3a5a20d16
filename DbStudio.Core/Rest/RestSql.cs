// Stage 3: plans a RestRequest against the table's real columns and writes its one SQL statement.
// Every name is checked against the catalog and quoted; every value is a parameter, cast to the
// column's own type so PostgreSQL parses it and indexes apply. PostgreSQL builds the response JSON.
// Embedded resources (RestSql.Embed.cs) join in the same statement as PostgREST joins them: one LEFT (or INNER)
// JOIN LATERAL subquery per embed, row_to_json for to-one and json_agg for to-many, under the caller's own role.
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
    /// <summary>Accept: text/csv — the statement returns one CSV line per row (PostgreSQL's record text); this is the header line.</summary>
    public string? CsvHeader { get; init; }
    /// <summary>Prefer: return=headers-only on POST — the rows carry the primary key, for the Location header.</summary>
    public IReadOnlyList<string>? LocationColumns { get; init; }
    /// <summary>The tables embedded resources read (their access settings must be in force before the statement runs).</summary>
    public IReadOnlyCollection<string> EmbeddedTables { get; init; } = [];
}

/// <summary>
/// A read for `COPY (<see cref="Select"/>) TO STDOUT`: its values are <see cref="Arguments"/> (a JSON array), stored in the
/// same transaction first by <see cref="SetArguments"/> with <see cref="Arguments"/> as its parameter $1.
/// </summary>
public sealed record CopyQuery(string Select, string Arguments)
{
    public string SetArguments => $"SELECT pg_catalog.set_config('{RestSql.CopyArgumentsSetting}', $1, true)";
}

public sealed partial class RestSql
{
    /// <summary>count=estimated: from this many rows (the planner's estimate) on, the estimate stands in for count(*).</summary>
    public const long EstimatedFrom = 100_000;

    private const string T = "pgrst_t";        // alias of the target table
    private const string Src = "pgrst_source"; // the CTE holding the statement's rows
    private const string Body = "pgrst_body";  // the request body as a record set

    private readonly StringBuilder _sql = new(256); // sized for a usual statement: no chunk-by-chunk growth
    private readonly List<NpgsqlParameter> _params = [];
    private readonly RestRequest _req;
    private readonly TableInfo _table;
    /// <summary>The project's tables and relationships, for embedded resources (null: embedding is refused).</summary>
    private readonly SchemaSnapshot? _schema;
    /// <summary>Numbers the aliases of embedded resources (pgrst_e1, pgrst_a1, …).</summary>
    private int _aliases;
    private readonly HashSet<string> _embedded = [];
    /// <summary>Who asks (its role decides which columns an error hint may name); null: name none.</summary>
    private readonly RestCaller? _caller;

    /// <summary>The alias filters name the target by (pgrst_t, or the table's own name for <see cref="FilterCondition"/>).</summary>
    private readonly string _alias = T;

    private RestSql(RestRequest req, TableInfo table, RestCaller? caller, string alias = T, List<NpgsqlParameter>? parameters = null,
        SchemaSnapshot? schema = null)
    {
        _req = req;
        _table = table;
        _schema = schema;
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
        var where = b.Where(b.Root);
        return where.Length == 0 ? "true" : where;
    }

    /// <summary>
    /// The read of <paramref name="req"/> (its select, filters, order, limit and offset; no embedded resources) as one SELECT
    /// that `COPY (…) TO STDOUT` can run, in the order asked, else by primary key. COPY takes no bind parameters, so the
    /// values go in as one: the JSON array <see cref="CopyQuery.Arguments"/>, which <see cref="CopyQuery.SetArguments"/>
    /// stores, parameter $1, in a setting local to the transaction; the statement reads each value back from it (once, as a
    /// scalar sub-select) and casts it as the planner would cast the parameter. No value is ever written into SQL text.
    /// </summary>
    public static CopyQuery ForCopy(RestRequest req, TableInfo table, RestCaller? caller = null)
    {
        if (req.Embeds.Count > 0)
            throw RestException.BadRequest("A CSV export has no embedded resources", null, "Select the table's own columns, e.g. select=id,title");
        var b = new RestSql(req, table, caller) { _copyArguments = true };
        var sql = new StringBuilder("SELECT ").Append(b.SelectList(req.Select, b.Root)).Append(" FROM ").Append(b.Target()).Append(" AS ").Append(T);
        var where = b.Where(b.Root);
        if (where.Length > 0) sql.Append(" WHERE ").Append(where);
        sql.Append(b.OrderBy(req.Order.Count > 0 ? req.Order : [.. table.PrimaryKey.Select(c => new OrderTerm(c.Name, false, null))], b.Root));
        if (req.Limit is long limit) sql.Append(" LIMIT ").Append(b.Param(limit, NpgsqlDbType.Bigint));
        if (req.Offset > 0) sql.Append(" OFFSET ").Append(b.Param(req.Offset, NpgsqlDbType.Bigint));
        return new CopyQuery(sql.ToString(), JsonSerializer.Serialize(b._params.Select(p => p.Value is DBNull ? null : p.Value)));
    }

    /// <summary>Values of a COPY statement are read from this transaction-local setting (ForCopy).</summary>
    internal const string CopyArgumentsSetting = "dbstudio.copy_args";

    /// <summary>ForCopy: parameters are references into the arguments' JSON rather than $n.</summary>
    private bool _copyArguments;

    /// <summary>Parameter <paramref name="index"/> (0-based) of a COPY statement: read from the arguments, typed as the parameter.</summary>
    private static string CopyArgument(int index, NpgsqlDbType type)
    {
        var args = $"pg_catalog.current_setting('{CopyArgumentsSetting}')::jsonb";
        return type switch
        {
            NpgsqlDbType.Text => $"(SELECT {args} ->> {index})",
            NpgsqlDbType.Integer => $"(SELECT ({args} ->> {index})::integer)",
            NpgsqlDbType.Bigint => $"(SELECT ({args} ->> {index})::bigint)",
            NpgsqlDbType.Array | NpgsqlDbType.Text => $"(SELECT ARRAY(SELECT pg_catalog.jsonb_array_elements_text({args} -> {index})))",
            _ => throw new InvalidOperationException($"a COPY statement takes no {type} parameter"),
        };
    }

    /// <summary>The columns <paramref name="filters"/> name (checked against the table).</summary>
    public static IEnumerable<string> FilterColumns(IEnumerable<Filter> filters) => filters.SelectMany(f => f switch
    {
        LogicFilter g => FilterColumns(g.Children),
        ColumnFilter c => [c.Column],
        _ => [],
    }).Distinct();

    /// <param name="ownerColumn">the table's user_id_col; a signed-in user's inserts get their id there</param>
    /// <param name="maxRows">most rows a read returns (and most rows of each embedded array)</param>
    /// <param name="schema">the project's catalog, for embedded resources</param>
    public static RestPlan Build(RestRequest req, TableInfo table, RestCaller caller, string? ownerColumn, long maxRows,
        SchemaSnapshot? schema = null)
    {
        var b = new RestSql(req, table, caller, schema: schema) { _maxRows = maxRows };
        var plan = req.Verb switch
        {
            RestVerb.Get or RestVerb.Head => b.Read(maxRows),
            RestVerb.Post => b.Insert(caller, ownerColumn),
            RestVerb.Patch => b.Update(caller),
            RestVerb.Delete => b.Delete(caller),
            _ => throw new ArgumentOutOfRangeException(nameof(req)),
        };
        return b._embedded.Count == 0 ? plan : plan with { EmbeddedTables = b._embedded };
    }

    // ---- statements -----------------------------------------------------------------------------------

    private long _maxRows = long.MaxValue;

    /// <summary>The target table under its alias (pgrst_t, or the alias FilterCondition was given).</summary>
    private Scope Root => new(_table, _alias);

    private RestPlan Read(long maxRows)
    {
        var where = Where(Root);
        string? countSql = null;
        if (_req.Count != CountPref.None)
        {
            // !inner embeds take rows away: the count asks for them with EXISTS, as PostgREST's count does.
            var exists = InnerExists(_req.Embeds, Root);
            var countWhere = string.Join(" AND ", new[] { where }.Concat(exists).Where(c => c.Length > 0));
            countSql = CountStatement(countWhere);
        }
        var countParams = _params.Count;
        var limit = Math.Min(_req.Limit ?? maxRows, maxRows);
        // The page is cut in a subquery and its values are turned into output there-after: PostgreSQL evaluates an
        // outer SELECT list only for the rows that survive OFFSET/LIMIT (a cast in the inner list would run for every
        // skipped row too).
        var plain = _req.Csv ? null : PlainColumns();
        var joins = new StringBuilder();
        var inner = new StringBuilder(256).Append("SELECT ").Append(RootList(joins)).Append(" FROM ").Append(Target()).Append(" AS ").Append(T).Append(joins);
        if (where.Length > 0) inner.Append(" WHERE ").Append(where);
        inner.Append(OrderBy(_req.Order, Root));
        inner.Append(" LIMIT ").Append(Param(limit, NpgsqlDbType.Bigint));
        if (_req.Offset > 0) inner.Append(" OFFSET ").Append(Param(_req.Offset, NpgsqlDbType.Bigint));
        AppendOutput(inner.ToString(), plain);
        return new RestPlan(_sql.ToString(), _params, ReturnsRows: true, IsWrite: false, countSql, countParams)
            { PlainColumns = plain, CsvHeader = CsvHeader() };
    }

    /// <summary>`SELECT &lt;JSON, plain values or CSV lines&gt; FROM (inner) pgrst_source`.</summary>
    private void AppendOutput(string inner, IReadOnlyList<PlainColumn>? plain)
    {
        if (plain is not null) _sql.Append("SELECT ").Append(PlainSelectList(plain));
        else if (_req.Csv) _sql.Append("SELECT substring(").Append(Src).Append("::text, 2, length(").Append(Src).Append("::text) - 2)");
        else _sql.Append("SELECT row_to_json(").Append(Src).Append(")::text");
        _sql.Append(" FROM (").Append(inner).Append(") ").Append(Src);
    }

    private string? CsvHeader() => _req.Csv ? string.Join(",", OutputNames().Select(CsvField)) : null;

    private static string CsvField(string name) =>
        name.Length == 0 || name.IndexOfAny([',', '"', '\n', '\r', ' ', '\\', '(', ')']) >= 0 ? "\"" + name.Replace("\"", "\"\"") + "\"" : name;

    private RestPlan Insert(RestCaller caller, string? ownerColumn)
    {
        var (json, keys, objects) = ParseBody(allowArray: true);
        if (objects == 0) return new RestPlan("SELECT NULL::text WHERE false", [], ReturnsRows: true, IsWrite: true);
        var columns = (_req.Columns ?? keys).Select(n => Column(_table, n)).ToList();
        var fillOwner = caller.Kind == CallerKind.User && ownerColumn is not null && _table.Find(ownerColumn) is not null;
        if (fillOwner && columns.All(c => c.Name != ownerColumn)) columns.Add(_table.Find(ownerColumn!)!);
        if (columns.Count == 0)
        {
            if (objects > 1) throw RestException.BadRequest("Objects without keys can only be inserted one at a time", null,
                "Send {} alone to insert a row of defaults");
            OpenWrite().Append("INSERT INTO ").Append(Target()).Append(" AS ").Append(T).Append(" DEFAULT VALUES");
            return CloseWrite();
        }

        // Prefer: missing=default — each object's missing keys take the column's default, as PostgREST does it: the
        // defaults (PostgreSQL's own expressions for them, pg_get_expr) as a jsonb object under each element.
        var defaults = _req.MissingDefault ? columns.Where(c => c.Default is not null).ToList() : [];
        var bodyParam = Param(json, defaults.Count > 0 ? NpgsqlDbType.Jsonb : NpgsqlDbType.Json);
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
        if (defaults.Count == 0)
            _sql.Append(" FROM json_populate_recordset(NULL::").Append(Target()).Append(", ").Append(bodyParam).Append(") ").Append(Body);
        else
        {
            _sql.Append(" FROM jsonb_populate_recordset(NULL::").Append(Target()).Append(", (SELECT jsonb_agg(jsonb_build_object(");
            for (var i = 0; i < defaults.Count; i++)
            {
                if (i > 0) _sql.Append(", ");
                _sql.Append(Param(defaults[i].Name, NpgsqlDbType.Text)).Append(", ").Append(defaults[i].Default);
            }
            _sql.Append(") || pgrst_elem) FROM jsonb_array_elements(").Append(bodyParam).Append(") AS pgrst_elem)) ").Append(Body);
        }
        AppendOnConflict(columns);
        return CloseWrite();
    }

    private RestPlan Update(RestCaller caller)
    {
        RefuseUnfiltered(caller, "PATCH");
        var (json, keys, _) = ParseBody(allowArray: false);
        if (keys.Count == 0) throw RestException.BadRequest("Nothing to update: the body names no columns", null, "Send an object such as {\"name\":\"x\"}");
        var columns = keys.Select(n => Column(_table, n)).ToList();
        var bodyParam = Param(json, NpgsqlDbType.Json);
        var where = Where(Root);
        OpenWrite().Append("UPDATE ").Append(Target()).Append(" AS ").Append(T).Append(" SET ")
            .AppendJoin(", ", columns.Select(c => $"{SqlText.Ident(c.Name)} = {Body}.{SqlText.Ident(c.Name)}"))
            .Append(" FROM (SELECT * FROM json_populate_record(NULL::").Append(Target()).Append(", ").Append(bodyParam).Append(")) ").Append(Body);
        if (where.Length > 0) _sql.Append(" WHERE ").Append(where);
        return CloseWrite();
    }

    private RestPlan Delete(RestCaller caller)
    {
        RefuseUnfiltered(caller, "DELETE");
        var where = Where(Root);
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

    /// <summary>return=headers-only on POST: the inserted rows' primary key makes the Location header.</summary>
    private bool ReturnsLocation() => _req.Verb == RestVerb.Post && _req.Return == ReturnPref.HeadersOnly && !_req.Singular
                                      && _table.PrimaryKey.Count > 0;

    /// <summary>A write that returns rows runs inside a CTE whose rows PostgreSQL turns into JSON.</summary>
    private StringBuilder OpenWrite() => ReturnsBody() || ReturnsLocation() ? _sql.Append("WITH ").Append(Src).Append(" AS (") : _sql;

    private RestPlan CloseWrite()
    {
        if (ReturnsLocation())
        {
            var pk = _table.PrimaryKey.Select(c => c.Name).ToList();
            _sql.Append(" RETURNING ").AppendJoin(", ", pk.Select(c => T + "." + SqlText.Ident(c)))
                .Append(") SELECT row_to_json(").Append(Src).Append(")::text FROM ").Append(Src);
            return new RestPlan(_sql.ToString(), _params, ReturnsRows: true, IsWrite: true) { LocationColumns = pk };
        }
        if (!ReturnsBody()) return new RestPlan(_sql.ToString(), _params, ReturnsRows: false, IsWrite: true);
        if (_req.Embeds.Count == 0 && !_req.Csv && _req.Order.Count == 0)
        {
            _sql.Append(" RETURNING ").Append(SelectList(_req.Select, Root)).Append(") SELECT row_to_json(").Append(Src).Append(")::text FROM ").Append(Src);
            return new RestPlan(_sql.ToString(), _params, ReturnsRows: true, IsWrite: true);
        }
        // Embeds (or CSV, or an order): the written rows' columns that the select, the order and the relationships need,
        // then the same select as a read over them: SELECT … FROM pgrst_source AS pgrst_t LEFT JOIN LATERAL (…) ORDER BY ….
        _sql.Append(" RETURNING ").Append(ReturnedColumns()).Append(") ");
        var joins = new StringBuilder();
        var inner = new StringBuilder(256).Append("SELECT ").Append(RootList(joins)).Append(" FROM ").Append(Src).Append(" AS ").Append(T).Append(joins);
        inner.Append(OrderBy(_req.Order, Root));
        AppendOutput(inner.ToString(), null);
        return new RestPlan(_sql.ToString(), _params, ReturnsRows: true, IsWrite: true) { CsvHeader = CsvHeader() };
    }

    /// <summary>RETURNING for a write whose response embeds: every column named by the select or a relationship.</summary>
    private string ReturnedColumns()
    {
        if (_req.Select.Any(i => i.IsStar)) return T + ".*";
        var names = _req.Select.Select(i => Column(_table, i.Column).Name).Concat(_req.Order.Select(o => Column(_table, o.Column).Name))
            .Concat(_req.Embeds.SelectMany(e => JoinColumns(e, _table))).Distinct().ToList();
        return names.Count == 0 ? "NULL AS pgrst_nothing" : string.Join(", ", names.Select(n => T + "." + SqlText.Ident(n)));
    }

    private void AppendOnConflict(IReadOnlyList<ColumnInfo> insertColumns)
    {
        if (_req.Resolution == ResolutionPref.None) return;
        var target = _req.OnConflict?.Select(n => Column(_table, n)).ToList() ?? _table.PrimaryKey.ToList();
        if (target.Count == 0)
            throw RestException.BadRequest("An upsert needs on_conflict or a primary key",
                $"\"{_table.Name}\" has no primary key", "Add ?on_conflict=column (a column with a unique constraint)");
        _sql.Append(" ON CONFLICT (").AppendJoin(", ", target.Select(c => SqlText.Ident(c.Name))).Append(") ");
        var updates = insertColumns.Where(c => target.All(t => t.Name != c.Name)).ToList();
        if (_req.Resolution == ResolutionPref.IgnoreDuplicates || updates.Count == 0) _sql.Append("DO NOTHING");
        else _sql.Append("DO UPDATE SET ").AppendJoin(", ", updates.Select(c => $"{SqlText.Ident(c.Name)} = EXCLUDED.{SqlText.Ident(c.Name)}"));
    }

    // ---- pieces ---------------------------------------------------------------------------------------

    /// <summary>A table under the alias the statement gives it.</summary>
    private readonly record struct Scope(TableInfo Table, string Alias);

    private string Target() => SqlText.Qualified(_table.Schema, _table.Name);

    private ColumnInfo Column(TableInfo table, string name) => table.Find(name) ?? throw UnknownColumn(table, name);

    /// <summary>The hint names only the columns the caller's role holds a privilege on (PostgreSQL decided, SchemaCache).</summary>
    private RestException UnknownColumn(TableInfo table, string name)
    {
        var usable = _caller is null ? [] : table.ColumnsFor(_caller.Role).Select(c => c.Name).ToList();
        return new(400, "42703", $"column {table.Name}.{RestParser.Trim(name)} does not exist", null,
            usable.Count == 0 ? null : $"Columns of \"{table.Name}\": {string.Join(", ", usable)}");
    }

    /// <summary>The output keys of a row, in order: the columns (star expanded), then the embeds (spreads expanded).</summary>
    private List<string> OutputNames() => OutputNames(_req.Select, _req.Embeds, _table);

    private List<string> OutputNames(IReadOnlyList<SelectItem> select, IReadOnlyList<Embed> embeds, TableInfo table)
    {
        var names = new List<string>();
        foreach (var item in select)
            if (item.IsStar) names.AddRange(table.Columns.Select(c => c.Name));
            else names.Add(item.OutputName);
        foreach (var e in embeds)
        {
            if (e.Spread) names.AddRange(OutputNames(e.Select, e.Embeds, FindTable(e, table)));
            else if (e.Select.Count > 0 || e.Embeds.Count > 0) names.Add(e.Name);
        }
        return names;
    }

    /// <summary>The output columns with their JSON kinds, when every one has a direct JSON form (RowJson).</summary>
    private IReadOnlyList<PlainColumn>? PlainColumns()
    {
        var shapes = PlainShapes.Of(_table);
        // The default shape (select=*, nothing embedded): the table's list as it was made once.
        if (_req.Select is [{ IsStar: true }] && _req.Embeds.Count == 0) return shapes.Star;
        var result = new List<PlainColumn>();
        foreach (var item in _req.Select)
        {
            if (item.IsStar)
            {
                if (shapes.Star is null) return null;
                result.AddRange(shapes.Star);
                continue;
            }
            var col = Column(_table, item.Column);
            if (item is { Cast: null, Alias: null, Path.Count: 0 } && shapes.Column(col.Name) is { } same)
            {
                result.Add(same);
                continue;
            }
            var kind = item.Cast is not null ? RowJson.KindOfCast(item.Cast)
                : item.Path.Count > 0 ? (item.Path[^1].AsText ? JsonKind.String : RowJson.KindOf(col.TypeOid) is JsonKind.Json ? JsonKind.Json : null)
                : RowJson.KindOf(col.TypeOid);
            if (kind is null) return null;
            result.Add(new PlainColumn(item.OutputName, kind.Value));
        }
        // Embedded resources are JSON that PostgreSQL built; spreads keep row_to_json.
        foreach (var e in _req.Embeds)
        {
            if (e.Spread) return null;
            if (e.Select.Count > 0 || e.Embeds.Count > 0) result.Add(new PlainColumn(e.Name, JsonKind.Json));
        }
        // Duplicate output names: row_to_json keeps both; keep its behaviour there.
        return result.Select(c => c.Name).Distinct().Count() == result.Count ? result : null;
    }

    /// <summary>The outer SELECT list for <paramref name="plain"/>: the subquery's columns, as text where the kind says so.</summary>
    private string PlainSelectList(IReadOnlyList<PlainColumn> plain)
    {
        var shapes = PlainShapes.Of(_table);
        return ReferenceEquals(plain, shapes.Star) ? shapes.StarSelect(MakePlainSelectList) : MakePlainSelectList(plain);
    }

    private static string MakePlainSelectList(IReadOnlyList<PlainColumn> plain) =>
        string.Join(", ", plain.Select(c => c.SelectAsText ? $"({Src}.{SqlText.Ident(c.Name)})::text" : $"{Src}.{SqlText.Ident(c.Name)}"));

    /// <summary>The top level's columns and its embeds' outputs (their joins into <paramref name="joins"/>): a select of
    /// embeds only (`?select=children(id)`) has no column before them.</summary>
    private string RootList(StringBuilder joins) =>
        string.Join(", ", new[] { SelectList(_req.Select, Root) }.Where(x => x.Length > 0).Concat(EmbedJoins(_req.Embeds, Root, joins)));

    private string SelectList(IReadOnlyList<SelectItem> select, Scope scope)
    {
        var parts = new List<string>();
        foreach (var item in select)
        {
            if (item.IsStar) { parts.Add(scope.Alias + ".*"); continue; }
            var c = Column(scope.Table, item.Column);
            var expr = Field(scope, c, item.Path);
            if (item.Cast is not null) expr = $"({expr})::{item.Cast}";
            parts.Add(expr + " AS " + SqlText.Ident(item.Alias ?? (item.Path.Count > 0 ? item.OutputName : c.Name)));
        }
        return string.Join(", ", parts);
    }

    /// <summary>`alias."col"`, followed by its JSON path (`->$1->>$2`): keys are parameters, array indexes integers.</summary>
    private string Field(Scope scope, ColumnInfo c, IReadOnlyList<JsonStep> path)
    {
        var expr = scope.Alias + "." + SqlText.Ident(c.Name);
        if (path.Count == 0) return expr;
        var sb = new StringBuilder(expr);
        foreach (var step in path)
        {
            sb.Append(step.AsText ? "->>" : "->");
            sb.Append(step.IsIndex ? Param(int.Parse(step.Key, System.Globalization.CultureInfo.InvariantCulture), NpgsqlDbType.Integer)
                : Param(step.Key, NpgsqlDbType.Text));
        }
        return sb.ToString();
    }

    /// <summary>
    /// The count statement: `SELECT count`, or for planned/estimated counts without filters `SELECT count, estimated`
    /// — the planner's row estimate where it stands in (any table for planned, 100,000 rows and more for estimated; never
    /// where row security applies to the caller), else the exact count — so the result can say which it is.
    /// </summary>
    private string CountStatement(string where)
    {
        var exact = $"(SELECT count(*) FROM {Target()} AS {T}{(where.Length > 0 ? " WHERE " + where : "")})";
        if (_req.Count == CountPref.Exact || where.Length > 0) return "SELECT " + exact;
        var oid = Param((long)_table.Oid, NpgsqlDbType.Bigint);
        var estimate = $"(SELECT reltuples::bigint FROM pg_catalog.pg_class WHERE oid = {oid}::oid)";
        // Not where row security applies to the caller: the table's estimate counts the rows its policies hide.
        var stands = (_req.Count == CountPref.Planned ? "e >= 0" : $"e >= {EstimatedFrom}") + $" AND NOT pg_catalog.row_security_active({oid}::oid)";
        return $"SELECT CASE WHEN {stands} THEN e ELSE {exact} END, {stands} FROM (SELECT {estimate} AS e) pgrst_e";
    }

    private string OrderBy(IReadOnlyList<OrderTerm> order, Scope scope)
    {
        if (order.Count == 0) return "";
        var sb = new StringBuilder(" ORDER BY ");
        for (var i = 0; i < order.Count; i++)
        {
            var o = order[i];
            if (i > 0) sb.Append(", ");
            sb.Append(Field(scope, Column(scope.Table, o.Column), o.Path)).Append(o.Descending ? " DESC" : " ASC");
            if (o.NullsFirst is bool nf) sb.Append(nf ? " NULLS FIRST" : " NULLS LAST");
        }
        return sb.ToString();
    }

    private string Where(Scope scope) => Where(_req.Filters, scope);

    private string Where(IReadOnlyList<Filter> filters, Scope scope) => string.Join(" AND ", filters.Select(f => Condition(f, scope)));

    private string Condition(Filter f, Scope scope)
    {
        string expr;
        switch (f)
        {
            case LogicFilter g:
                expr = g.Children.Count == 0 ? (g.IsOr ? "false" : "true")
                    : "(" + string.Join(g.IsOr ? " OR " : " AND ", g.Children.Select(c => Condition(c, scope))) + ")";
                break;
            case ColumnFilter c:
                expr = Leaf(c, scope);
                break;
            default: throw new InvalidOperationException();
        }
        return f.Negated ? $"NOT ({expr})" : expr;
    }

    private string Leaf(ColumnFilter f, Scope scope)
    {
        var c = Column(scope.Table, f.Column);
        var col = Field(scope, c, f.Path);
        // A JSON path ending in ->> is text; one ending in -> is the column's json type.
        var type = f.Path.Count == 0 ? c.Type : f.Path[^1].AsText ? "text" : c.Type;
        string Typed(string? v) => $"{Param(v, NpgsqlDbType.Text)}::{type}";
        if (f.Quantifier != Quantifier.None)
        {
            var quant = f.Quantifier == Quantifier.Any ? "ANY" : "ALL";
            var textual = f.Op is FilterOp.Like or FilterOp.Ilike or FilterOp.Match or FilterOp.Imatch;
            var list = $"{Param(f.Values!.ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Text)}" + (textual ? "" : $"::{type}[]");
            var op = f.Op switch
            {
                FilterOp.Eq => "=", FilterOp.Neq => "<>", FilterOp.Gt => ">", FilterOp.Gte => ">=", FilterOp.Lt => "<", FilterOp.Lte => "<=",
                FilterOp.Like => "LIKE", FilterOp.Ilike => "ILIKE", FilterOp.Match => "~", _ => "~*",
            };
            return $"{(textual ? col + "::text" : col)} {op} {quant}({list})";
        }
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
                : $"{col} = ANY({Param(f.Values!.ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Text)}::{type}[])",
            FilterOp.Is => f.Value switch
            {
                "null" => $"{col} IS NULL",
                "not_null" => $"{col} IS NOT NULL",
                "true" => $"{col} IS TRUE",
                "false" => $"{col} IS FALSE",
                _ => $"{col} IS UNKNOWN",
            },
            FilterOp.IsDistinct => $"{col} IS DISTINCT FROM {Typed(f.Value)}",
            FilterOp.Cs => $"{col} @> {Typed(f.Value)}",
            FilterOp.Cd => $"{col} <@ {Typed(f.Value)}",
            FilterOp.Ov => $"{col} && {Typed(f.Value)}",
            FilterOp.Sl => $"{col} << {Typed(f.Value)}",
            FilterOp.Sr => $"{col} >> {Typed(f.Value)}",
            FilterOp.Nxr => $"{col} &< {Typed(f.Value)}",
            FilterOp.Nxl => $"{col} &> {Typed(f.Value)}",
            FilterOp.Adj => $"{col} -|- {Typed(f.Value)}",
            FilterOp.Fts or FilterOp.Plfts or FilterOp.Phfts or FilterOp.Wfts => FullText(f, c, col),
            _ => throw new ArgumentOutOfRangeException(nameof(f)),
        };
    }

    /// <summary>
    /// `col @@ to_tsquery([config, ]query)` for a tsvector column; other columns (text, json) go through to_tsvector with the
    /// same configuration first, as PostgREST does. The configuration is a parameter cast to regconfig.
    /// </summary>
    private string FullText(ColumnFilter f, ColumnInfo c, string col)
    {
        var function = f.Op switch
        {
            FilterOp.Fts => "to_tsquery", FilterOp.Plfts => "plainto_tsquery", FilterOp.Phfts => "phraseto_tsquery", _ => "websearch_to_tsquery",
        };
        var config = f.Language is null ? "" : Param(f.Language, NpgsqlDbType.Text) + "::regconfig, ";
        var vector = c.TypeOid == PgType.TsVector && f.Path.Count == 0 ? col : $"pg_catalog.to_tsvector({config}{col})";
        return $"{vector} @@ pg_catalog.{function}({config}{Param(f.Value, NpgsqlDbType.Text)})";
    }

    private string Param(object? value, NpgsqlDbType type)
    {
        _params.Add(new NpgsqlParameter { Value = value ?? DBNull.Value, NpgsqlDbType = type });
        return _copyArguments ? CopyArgument(_params.Count - 1, type) : "$" + _params.Count;
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
